from django.db import models
from django.utils.translation import gettext_lazy as _

from opsportal.secrets import EncryptedTextField
from projects.choices import Environment


class ProjectEnvironment(models.Model):
    """A project in one environment: where it runs and the configuration last applied there."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="environments")
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.PROTECT, null=True, blank=True, related_name="environments"
    )
    namespace = models.CharField(_("namespace"), max_length=63, blank=True)
    # The request (WorkloadSpec fields) and ops overrides last applied; {} until first provisioned.
    spec = models.JSONField(default=dict, blank=True)
    # The secret environment variables last applied, JSON {NAME: value} (see
    # clusters.workload.secret_env); the spec holds only their names.
    secret_env = EncryptedTextField(_("secret environment variables"), blank=True, default="")
    live_objects = models.JSONField(default=list, blank=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "environment"], name="unique_project_environment")
        ]
        ordering = ["project", "environment"]
        # The model moved here from deploys; the table kept its name so no data was copied.
        db_table = "deploys_projectenvironment"

    def __str__(self) -> str:
        return f"{self.project}/{self.environment}"
