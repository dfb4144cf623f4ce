"""Form parts for a workload request, shared by the onboarding ticket and the configuration page: the
catalogue's fields (``WorkloadRequestForm``), secret environment variables, NAME=value lines and the
guardrail overrides."""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.workload import fields as workload_fields
from opsportal.forms import WriteOnlyTextarea

ENV_LINE = re.compile(r"^([^=\s]+)=(.*)$")
SECRET_ENV_HELP = _(
    "One NAME=value per line, e.g. DB_PASSWORD=…. Stored encrypted and never shown again. Leave empty to "
    "keep the stored ones; a line NAME= with nothing after the = removes NAME."
)


def secret_env_field() -> forms.CharField:
    return forms.CharField(
        label=_("Secret environment variables"),
        required=False,
        max_length=20000,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text=SECRET_ENV_HELP,
    )


def parse_env_lines(text: str) -> list[list[str]]:
    """NAME=value lines as [name, value] pairs, blank lines skipped; raises ValidationError."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = ENV_LINE.match(line.strip())
        if match is None:
            raise ValidationError(_("Line %(n)s is not NAME=value.") % {"n": number})
        pairs.append([match[1], match[2]])
    return pairs


def parse_secret_env(text: str) -> dict[str, str]:
    """NAME=value lines as changes for secret_env.merge ("" removes NAME); raises ValidationError."""
    changes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = ENV_LINE.match(line.strip())
        if match is None:
            # Not the line itself: it may hold a secret.
            raise ValidationError(_("Line %(n)s is not NAME=value.") % {"n": number})
        if match[1] in changes:
            raise ValidationError(_("%(name)s appears twice.") % {"name": match[1]})
        changes[match[1]] = match[2]
    return changes


def secret_names_after(current: list[str], changes: dict[str, str]) -> list[str]:
    names = set(current)
    for name, value in changes.items():
        (names.add if value else names.discard)(name)
    return sorted(names)


# Kinds whose empty value is "" in the request (numbers and booleans keep None or False).
_TEXT_KINDS = frozenset(
    {
        workload_fields.Kind.TEXT,
        workload_fields.Kind.QUANTITY,
        workload_fields.Kind.PATH,
        workload_fields.Kind.CHOICE,
    }
)


def request_form_field(entry: workload_fields.RequestField) -> forms.Field:
    """The form field of a catalogue entry. Bounds are only shown: the spec's rules check them, with the
    same messages as the API."""
    Kind = workload_fields.Kind
    common = {
        "label": entry.label,
        "help_text": entry.help_text,
        "required": entry.blank == workload_fields.Blank.NOT_ALLOWED,
    }
    if entry.kind == Kind.INT:
        return forms.IntegerField(**common)
    if entry.kind == Kind.BOOL:
        return forms.BooleanField(**common)
    if entry.kind == Kind.CHOICE:
        return forms.ChoiceField(choices=entry.choices, **common)
    if entry.kind == Kind.ENV_LINES:
        attrs = {"rows": 4, **({"placeholder": entry.placeholder} if entry.placeholder else {})}
        return forms.CharField(max_length=entry.max_length, widget=forms.Textarea(attrs=attrs), **common)
    return forms.CharField(max_length=entry.max_length, **common)


class WorkloadRequestForm(forms.Form):
    """The workload request fields of one use (ticket or configuration), built from the catalogue, plus the
    write-only secret variables after the plain ones. Validation is the manifests module's, so the forms,
    the API and provisioning agree on every rule."""

    use = workload_fields.Use.TICKET

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        generated: dict[str, forms.Field] = {}
        for entry in workload_fields.entries(self.use):
            generated[entry.name] = request_form_field(entry)
            if entry.kind == workload_fields.Kind.ENV_LINES:
                generated["secret_env_vars"] = secret_env_field()
        # Fields a subclass declares (e.g. the environment of a new ticket) follow, unless field_order says.
        self.fields = {**generated, **self.fields}
        self.order_fields(self.field_order)

    def clean_env_vars(self) -> list[list[str]]:
        return parse_env_lines(self.cleaned_data["env_vars"])

    def clean_secret_env_vars(self) -> dict[str, str]:
        return parse_secret_env(self.cleaned_data["secret_env_vars"])

    def request_from_cleaned(self) -> dict:
        """The request these fields describe; an empty optional field is "not set" or left out."""
        data = {}
        for entry in workload_fields.entries(self.use):
            value = self.cleaned_data.get(entry.name)
            if entry.blank == workload_fields.Blank.OMIT and value in (None, ""):
                continue
            if entry.blank == workload_fields.Blank.EMPTY and entry.kind in _TEXT_KINDS:
                value = (value or "").strip()
            data[entry.name] = value
        return data

    @classmethod
    def initial_from_request(cls, request: dict) -> dict:
        initial = {entry.name: request.get(entry.name) for entry in workload_fields.entries(cls.use)}
        initial["env_vars"] = "\n".join(f"{k}={v}" for k, v in request.get("env_vars") or [])
        return initial


class OverridesForm(forms.Form):
    """Ops-only changes to guardrail defaults; every change is recorded on the ticket's audit trail."""

    def __init__(self, *args, knobs: dict, spec=None, **kwargs):
        super().__init__(*args, **kwargs)
        for name, knob in knobs.items():
            if spec is not None and spec.language not in knob.languages:
                continue
            help_text = ""
            if spec is not None:
                help_text = _("Default %(default)s; below %(safe)s is unsafe.") % {
                    "default": knob.default(spec),
                    "safe": knob.safe_minimum(spec),
                }
            self.fields[name] = forms.IntegerField(
                label=knob.description,
                required=False,
                min_value=knob.lowest,
                max_value=knob.highest,
                widget=forms.NumberInput(attrs={"class": "form-control"}),
                help_text=help_text,
            )

    def overrides(self) -> dict:
        return {name: value for name, value in self.cleaned_data.items() if value is not None}
