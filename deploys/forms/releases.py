from django import forms
from django.utils.translation import gettext_lazy as _

from deploys import recipes


class ReleaseForm(forms.Form):
    branch = forms.CharField(
        label=_("Branch"),
        max_length=200,
        widget=forms.TextInput(attrs={"class": "form-control", "list": "branches"}),
    )
    description = forms.CharField(
        label=_("What changes"),
        max_length=500,
        required=False,
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )


class RecipeForm(forms.Form):
    dockerfile = forms.CharField(
        label=_("Dockerfile template"),
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 12, "class": "form-control font-monospace"}),
        help_text=_("Placeholders: {{ base_image }}, {{ port }}, {{ project }}."),
    )
    build_shell = forms.CharField(
        label=_("Build shell"),
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 16, "class": "form-control font-monospace"}),
        help_text=_(
            "Runs in the Jenkins job. Build parameters arrive as environment "
            "variables: $GIT_URL, $GIT_TAG, $IMAGE, $DOCKERFILE, $APP_PORT."
        ),
    )
    comment = forms.CharField(
        label=_("What changed"), max_length=200, widget=forms.TextInput(attrs={"class": "form-control"})
    )

    def clean_dockerfile(self):
        errors = recipes.dockerfile_errors(self.cleaned_data["dockerfile"])
        if errors:
            raise forms.ValidationError(errors)
        return self.cleaned_data["dockerfile"]

    def clean_build_shell(self):
        errors = recipes.build_shell_errors(self.cleaned_data["build_shell"])
        if errors:
            raise forms.ValidationError(errors)
        return self.cleaned_data["build_shell"].replace("\r\n", "\n")
