from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from deploys import recipes


class ReleaseForm(forms.Form):
    branch = forms.CharField(
        label=gettext_lazy("Branch"),
        max_length=200,
        widget=forms.TextInput(attrs={"class": "form-control", "list": "branches"}),
    )
    description = forms.CharField(
        label=gettext_lazy("What changes"),
        max_length=500,
        required=False,
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )

    def __init__(self, *args, namespaces: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        # One textarea per Apollo namespace of the project (names may hold dots, so fields are numbered).
        self.namespaces = list(namespaces)
        for index, namespace in enumerate(self.namespaces):
            self.fields[f"config_{index}"] = forms.CharField(
                label=namespace,
                required=False,
                max_length=200000,
                widget=forms.Textarea(
                    attrs={"rows": 3, "class": "form-control font-monospace", "data-namespace": namespace}
                ),
            )

    def config_fields(self):
        return [self[f"config_{index}"] for index in range(len(self.namespaces))]

    def clean(self):
        cleaned = super().clean()
        changes = []
        for index, namespace in enumerate(self.namespaces):
            text = cleaned.pop(f"config_{index}", "") or ""
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if line.startswith("!"):
                    changes.append({"namespace": namespace, "key": line[1:].strip(), "delete": True})
                elif "=" in line:
                    key, value = line.split("=", 1)
                    changes.append({"namespace": namespace, "key": key.strip(), "value": value})
                else:
                    self.add_error(
                        f"config_{index}",
                        _("Line %(n)d: write key=value, or !key to delete the key.") % {"n": number},
                    )
        cleaned["config_changes"] = changes
        return cleaned


class RecipeForm(forms.Form):
    dockerfile = forms.CharField(
        label=gettext_lazy("Dockerfile template"),
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 12, "class": "form-control font-monospace"}),
        help_text=gettext_lazy("Placeholders: {{ base_image }}, {{ port }}, {{ project }}."),
    )
    build_shell = forms.CharField(
        label=gettext_lazy("Build shell"),
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 16, "class": "form-control font-monospace"}),
        help_text=gettext_lazy(
            "Runs in the Jenkins job. Build parameters arrive as environment "
            "variables: $GIT_URL, $GIT_TAG, $IMAGE, $DOCKERFILE, $APP_PORT."
        ),
    )
    comment = forms.CharField(
        label=gettext_lazy("What changed"),
        max_length=200,
        widget=forms.TextInput(attrs={"class": "form-control"}),
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
