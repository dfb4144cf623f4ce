from django import forms
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


class MemberForm(forms.Form):
    username = forms.CharField(
        label=_("User"),
        max_length=150,
        widget=forms.TextInput(attrs={"class": "form-control form-control-sm"}),
    )
    role = forms.ChoiceField(
        label=_("Role"),
        choices=Role.choices,
        initial=Role.DEVELOPER,  # the common case; owner is a deliberate choice
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    prod_terminal = forms.BooleanField(label=_("May open production terminals"), required=False)

    def clean_username(self):
        user = get_user_model().objects.filter(username=self.cleaned_data["username"], is_active=True).first()
        if user is None:
            raise forms.ValidationError(_("No active user with that name."))
        return user


class ProjectSettingsForm(forms.Form):
    # Labels and help texts are the model's, so the page and the API describe the settings alike.
    require_tester_confirmation = Project._meta.get_field("require_tester_confirmation").formfield(
        required=False
    )
    auto_rollback = Project._meta.get_field("auto_rollback").formfield(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-check-input")
