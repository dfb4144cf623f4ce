from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.forms.workload import WorkloadRequestForm, secret_names_after
from clusters.selectors.clusters import cluster_log_pipeline
from clusters.workload import fields as workload_fields
from clusters.workload import request as request_fields
from clusters.workload import secret_env
from opsportal.forms import add_service_errors, check_version, version_field
from projects.choices import Environment

initial_request = workload_fields.initial_request


class TicketForm(WorkloadRequestForm):
    """The developer's side of an onboarding ticket."""

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

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.request_data = self.request_from_cleaned()
        self.secret_env_changes = cleaned.get("secret_env_vars") or {}
        names = secret_names_after(self.secret_names, self.secret_env_changes)
        try:
            request_fields.refuse_prod_image(environment=self.environment, request=self.request_data)
            request_fields.build_spec(
                project=self.project,
                environment=self.environment,
                cluster=self.cluster,
                request=secret_env.with_names(self.request_data, dict.fromkeys(names, "")),
                overrides=self.overrides,
                log_pipeline=cluster_log_pipeline(self.cluster),
            )
        except ValidationError as exc:
            add_service_errors(self, exc)
        return cleaned


class NewTicketForm(TicketForm):
    environment = forms.ChoiceField(label=_("Environment"), choices=Environment.choices)
    field_order = ["environment"]


class EditTicketForm(TicketForm):
    """An edit of a filed ticket: it posts every field, so it carries the version it was loaded with."""

    version = version_field()

    def clean(self):
        return check_version(self, super().clean())


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
