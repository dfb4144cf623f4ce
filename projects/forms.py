from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from projects.choices import Language, Role
from projects.models import Project, dns1123_label


class ProjectForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=63, validators=[dns1123_label])
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    language = forms.ChoiceField(label=_("Language"), choices=Language.choices)
    gitlab_repository = forms.RegexField(
        label=_("GitLab repository"),
        required=False,
        max_length=255,
        regex=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$",
        error_messages={"invalid": _("Use a path such as group/service.")},
    )
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=get_user_model().objects.filter(is_active=True), to_field_name="username"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault(
                "class", "form-select" if isinstance(field, forms.ChoiceField) else "form-control"
            )


def _username_field() -> forms.CharField:
    return forms.CharField(
        label=_("User"),
        max_length=150,
        widget=forms.TextInput(attrs={"class": "form-control form-control-sm"}),
    )


class MemberForm(forms.Form):
    username = _username_field()
    role = forms.ChoiceField(
        label=_("Role"),
        choices=Role.choices,
        initial=Role.DEVELOPER,  # the common case; owner is a deliberate choice
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    # Checked: grant production terminals for the default duration (ops only). Unchecked leaves a grant
    # alone; ops revoke on the terminal grants page.
    prod_terminal = forms.BooleanField(
        label=_("Grant production terminals (ops only)"),
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )

    def clean_username(self):
        return _active_user(self.cleaned_data["username"])


def _active_user(username: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise forms.ValidationError(_("No active user with that name."))
    return user


class TerminalGrantForm(forms.Form):
    project = forms.ModelChoiceField(
        label=_("Project"),
        queryset=Project.objects.order_by("name"),
        to_field_name="name",
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    username = _username_field()
    hours = forms.IntegerField(
        label=_("Hours"),
        min_value=1,
        max_value=settings.PROD_TERMINAL_GRANT_MAX_HOURS,
        initial=settings.PROD_TERMINAL_GRANT_HOURS,
        widget=forms.NumberInput(attrs={"class": "form-control form-control-sm"}),
    )

    def clean_username(self):
        return _active_user(self.cleaned_data["username"])


class ProjectSettingsForm(forms.Form):
    # Labels and help texts are the model's, so the page and the API describe the settings alike.
    require_tester_confirmation = Project._meta.get_field("require_tester_confirmation").formfield(
        required=False
    )
    auto_rollback = Project._meta.get_field("auto_rollback").formfield(required=False)
    message_language = Project._meta.get_field("message_language").formfield(required=False)
    # Post-release verification; a field left out of the form keeps its value.
    verification_window_seconds = Project._meta.get_field("verification_window_seconds").formfield(
        required=False
    )
    verification_min_requests = Project._meta.get_field("verification_min_requests").formfield(required=False)
    verification_error_points = Project._meta.get_field("verification_error_points").formfield(required=False)
    verification_error_factor = Project._meta.get_field("verification_error_factor").formfield(required=False)
    verification_latency_ms = Project._meta.get_field("verification_latency_ms").formfield(required=False)
    verification_latency_factor = Project._meta.get_field("verification_latency_factor").formfield(
        required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.BooleanField):
                css = "form-check-input"
            elif isinstance(field, forms.ChoiceField):
                css = "form-select"
            else:
                css = "form-control"
            field.widget.attrs.setdefault("class", css)
