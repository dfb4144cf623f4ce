import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from clusters.choices import Environment
from deploys.choices import OPEN_TICKET_STATUSES, TICKET_TRANSITIONS, TicketStatus


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
    live_objects = models.JSONField(default=list, blank=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "environment"], name="unique_project_environment")
        ]
        ordering = ["project", "environment"]

    def __str__(self) -> str:
        return f"{self.project}/{self.environment}"


class OnboardingTicket(models.Model):
    """A request to run a project in an environment; ops approve it and the portal provisions it."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="tickets")
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=TicketStatus.choices, default=TicketStatus.DRAFT
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # What the developer asked for: the WorkloadSpec fields that are theirs to choose.
    request = models.JSONField(_("request"), default=dict)
    # Guardrail defaults that ops changed for this ticket, by knob name.
    overrides = models.JSONField(_("overrides"), default=dict, blank=True)
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.PROTECT, null=True, blank=True, related_name="tickets"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(_("rejection reason"), blank=True)
    # Provisioning: the run token ties queued task messages to one approval (see services).
    run_token = models.UUIDField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    progress = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    error_causes = models.JSONField(default=list, blank=True)
    live_objects = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "environment"],
                condition=Q(status__in=sorted(OPEN_TICKET_STATUSES)),
                name="one_open_ticket_per_environment",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.project}/{self.environment}"

    def can_move_to(self, status: str) -> bool:
        return status in TICKET_TRANSITIONS[self.status]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TICKET_STATUSES

    def new_run_token(self) -> uuid.UUID:
        self.run_token = uuid.uuid4()
        return self.run_token
