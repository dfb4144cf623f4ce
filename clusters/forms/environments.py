from django import forms

from clusters.forms.workload import WorkloadRequestForm
from clusters.workload import fields as workload_fields
from opsportal.forms import check_version, version_field


class EnvironmentConfigForm(WorkloadRequestForm):
    """Ops' edit of a running environment: the catalogue's configuration fields (the rest stay as
    provisioned). The rules are the manifests module's (see config_plan)."""

    use = workload_fields.Use.CONFIG
    version = version_field()

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = (
                "form-check-input"
                if isinstance(field, forms.BooleanField)
                else "form-control form-control-sm"
            )
            field.widget.attrs.setdefault("class", css)
            if read_only:
                field.disabled = True

    def clean(self):
        return check_version(self, super().clean())

    def secret_env_changes(self) -> dict[str, str]:
        return self.cleaned_data.get("secret_env_vars") or {}

    def request_data(self) -> dict:
        return self.request_from_cleaned()
