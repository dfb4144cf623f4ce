from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.forms.workload import (
    parse_env_lines,
    parse_secret_env,
    secret_env_field,
    secret_names_after,
)
from clusters.workload import request as request_fields
from clusters.workload import secret_env
from deploys.choices import ServiceType
from projects.choices import Environment

# Sensible starting values by language; Java services start slowly and need more memory.
LANGUAGE_DEFAULTS = {
    "java": {
        "cpu_request": "1",
        "memory_request": "1Gi",
        "startup_seconds": 60,
        "health_path": "/actuator/health",
    },
    "go": {
        "cpu_request": "250m",
        "memory_request": "256Mi",
        "startup_seconds": 10,
        "health_path": "/healthz",
    },
}
COMMON_DEFAULTS = {
    "replicas": 2,
    "hpa_min": 2,
    "hpa_max": 6,
    "cpu_request": "500m",
    "memory_request": "512Mi",
    "container_port": 8080,
    "service_port": 80,
    "service_type": ServiceType.CLUSTER_IP,
    "health_path": "/healthz",
    "startup_seconds": 30,
    "hpa_cpu_target": 70,
    "registry_refresh_seconds": 30,
    "eureka_deregister_path": "/actuator/service-registry",
}


def initial_request(language: str) -> dict:
    return {**COMMON_DEFAULTS, **LANGUAGE_DEFAULTS.get(language, {})}


class TicketForm(forms.Form):
    """The developer's side of an onboarding ticket. Validation is the manifests module's, so the form,
    the API and provisioning agree on every rule."""

    replicas = forms.IntegerField(label=_("Replicas"))
    hpa_min = forms.IntegerField(label=_("Autoscaling minimum"))
    hpa_max = forms.IntegerField(label=_("Autoscaling maximum"))
    hpa_cpu_target = forms.IntegerField(label=_("Target CPU utilisation (%)"))
    hpa_memory_target = forms.IntegerField(
        label=_("Target memory utilisation (%)"),
        required=False,
        help_text=_("Leave empty to scale on CPU only (recommended for Java)."),
    )
    cpu_request = forms.CharField(label=_("CPU request"), max_length=20, help_text=_("e.g. 1 or 500m"))
    memory_request = forms.CharField(
        label=_("Memory request"), max_length=20, help_text=_("e.g. 1Gi or 512Mi")
    )
    cpu_limit = forms.CharField(label=_("CPU limit"), max_length=20, required=False)
    memory_limit = forms.CharField(
        label=_("Memory limit"), max_length=20, required=False, help_text=_("Empty = same as the request.")
    )
    service_type = forms.ChoiceField(label=_("Access"), choices=ServiceType.choices)
    service_port = forms.IntegerField(label=_("Service port"))
    container_port = forms.IntegerField(label=_("Container port"))
    health_path = forms.CharField(label=_("Health-check path"), max_length=200)
    startup_seconds = forms.IntegerField(
        label=_("Expected start-up time (s)"), help_text=_("How long the application needs before it serves.")
    )
    runtime_options = forms.CharField(
        label=_("Runtime options"),
        required=False,
        max_length=2000,
        help_text=_("JVM options for Java (heap and CPU count are derived from the limits)."),
    )
    env_vars = forms.CharField(
        label=_("Environment variables"),
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "SPRING_PROFILES_ACTIVE=prod"}),
        help_text=_("One NAME=value per line."),
    )
    secret_env_vars = secret_env_field()
    eureka_enabled = forms.BooleanField(label=_("Registered in Eureka"), required=False)
    eureka_deregister_path = forms.CharField(
        label=_("De-registration endpoint"), max_length=200, required=False
    )
    registry_refresh_seconds = forms.IntegerField(label=_("Registry refresh interval (s)"), required=False)
    image = forms.CharField(
        label=_("Initial image"),
        required=False,
        max_length=500,
        help_text=_("Optional; the first release replaces it."),
    )

    def __init__(
        self, *args, project, environment: str, cluster=None, overrides=None, secret_names=(), **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.project, self.environment, self.cluster = project, environment, cluster
        self.overrides = overrides or {}
        # The names already stored (the values are never read back into the form).
        self.secret_names = sorted(secret_names)
        for field in self.fields.values():
            css = "form-check-input" if isinstance(field, forms.BooleanField) else "form-control"
            if isinstance(field, forms.ChoiceField):
                css = "form-select"
            field.widget.attrs.setdefault("class", css)

    def clean_env_vars(self) -> list[list[str]]:
        return parse_env_lines(self.cleaned_data["env_vars"])

    def clean_secret_env_vars(self) -> dict[str, str]:
        return parse_secret_env(self.cleaned_data["secret_env_vars"])

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.request_data = {key: cleaned.get(key) for key in request_fields.REQUEST_FIELDS if key in cleaned}
        self.secret_env_changes = cleaned.get("secret_env_vars") or {}
        names = secret_names_after(self.secret_names, self.secret_env_changes)
        for optional in ("cpu_limit", "memory_limit", "runtime_options", "image"):
            self.request_data[optional] = (self.request_data.get(optional) or "").strip()
        if self.request_data.get("registry_refresh_seconds") is None:
            self.request_data.pop("registry_refresh_seconds")
        if not self.request_data.get("eureka_deregister_path"):
            self.request_data.pop("eureka_deregister_path")
        try:
            request_fields.build_spec(
                project=self.project,
                environment=self.environment,
                cluster=self.cluster,
                request=secret_env.with_names(self.request_data, dict.fromkeys(names, "")),
                overrides=self.overrides,
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for key, errors in exc.error_dict.items():
                    self.add_error(key if key in self.fields else None, errors)
            else:
                self.add_error(None, exc)
        return cleaned

    @staticmethod
    def initial_from_request(request: dict) -> dict:
        initial = dict(request)
        initial["env_vars"] = "\n".join(f"{k}={v}" for k, v in request.get("env_vars", []))
        return initial


class NewTicketForm(TicketForm):
    environment = forms.ChoiceField(label=_("Environment"), choices=Environment.choices)
    field_order = ["environment"]


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "class": "form-control"})
    )


class ApproveForm(forms.Form):
    cluster = forms.ModelChoiceField(
        label=_("Cluster"),
        queryset=None,
        required=False,
        empty_label=_("Choose a cluster"),
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args, environment: str, **kwargs):
        from clusters.models import Cluster

        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = Cluster.objects.filter(environment=environment)
