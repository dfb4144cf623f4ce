from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.forms.workload import parse_env_lines, parse_secret_env, secret_env_field

# The request fields an environment's configuration page edits (the rest stay as provisioned).
CONFIG_FIELDS = (
    "replicas",
    "hpa_min",
    "hpa_max",
    "hpa_cpu_target",
    "hpa_memory_target",
    "cpu_request",
    "memory_request",
    "cpu_limit",
    "memory_limit",
    "health_path",
    "startup_seconds",
    "runtime_options",
    "env_vars",
)


class EnvironmentConfigForm(forms.Form):
    """Ops' edit of a running environment; the rules are the manifests module's (see config_plan)."""

    replicas = forms.IntegerField(label=_("Replicas"))
    hpa_min = forms.IntegerField(label=_("Autoscaling minimum"))
    hpa_max = forms.IntegerField(label=_("Autoscaling maximum"))
    hpa_cpu_target = forms.IntegerField(label=_("Target CPU utilisation (%)"))
    hpa_memory_target = forms.IntegerField(label=_("Target memory utilisation (%)"), required=False)
    cpu_request = forms.CharField(label=_("CPU request"), max_length=20)
    memory_request = forms.CharField(label=_("Memory request"), max_length=20)
    cpu_limit = forms.CharField(label=_("CPU limit"), max_length=20, required=False)
    memory_limit = forms.CharField(label=_("Memory limit"), max_length=20, required=False)
    health_path = forms.CharField(label=_("Health-check path"), max_length=200)
    startup_seconds = forms.IntegerField(label=_("Expected start-up time (s)"))
    runtime_options = forms.CharField(label=_("Runtime options"), required=False, max_length=2000)
    env_vars = forms.CharField(
        label=_("Environment variables"),
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One NAME=value per line."),
    )
    secret_env_vars = secret_env_field()

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-control form-control-sm")
            if read_only:
                field.disabled = True

    def clean_env_vars(self) -> list[list[str]]:
        return parse_env_lines(self.cleaned_data["env_vars"])

    def clean_secret_env_vars(self) -> dict[str, str]:
        return parse_secret_env(self.cleaned_data["secret_env_vars"])

    def secret_env_changes(self) -> dict[str, str]:
        return self.cleaned_data.get("secret_env_vars") or {}

    def request_data(self) -> dict:
        data = {key: self.cleaned_data.get(key) for key in CONFIG_FIELDS}
        for optional in ("cpu_limit", "memory_limit", "runtime_options"):
            data[optional] = (data.get(optional) or "").strip()
        return data

    @staticmethod
    def initial_from_request(request: dict) -> dict:
        initial = {key: request.get(key) for key in CONFIG_FIELDS}
        initial["env_vars"] = "\n".join(f"{k}={v}" for k, v in request.get("env_vars") or [])
        return initial
