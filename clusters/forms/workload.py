"""Form parts for a workload request, shared by the onboarding ticket and the configuration page:
secret environment variables, NAME=value lines and the guardrail overrides."""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

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
