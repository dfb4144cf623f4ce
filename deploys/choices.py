from django.db import models
from django.utils.translation import gettext_lazy as _


class TicketStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    PROVISIONING = "provisioning", _("Provisioning")
    ACTIVE = "active", _("Active")
    FAILED = "failed", _("Failed")


TICKET_TRANSITIONS: dict[str, frozenset[str]] = {
    TicketStatus.DRAFT: frozenset({TicketStatus.SUBMITTED}),
    TicketStatus.SUBMITTED: frozenset({TicketStatus.APPROVED, TicketStatus.REJECTED, TicketStatus.DRAFT}),
    TicketStatus.APPROVED: frozenset({TicketStatus.PROVISIONING, TicketStatus.FAILED}),
    TicketStatus.REJECTED: frozenset(),
    TicketStatus.PROVISIONING: frozenset({TicketStatus.ACTIVE, TicketStatus.FAILED}),
    # A failed ticket is retried by approving it again (ops).
    TicketStatus.FAILED: frozenset({TicketStatus.APPROVED}),
    TicketStatus.ACTIVE: frozenset(),
}
# A project environment has at most one ticket in these states at a time.
OPEN_TICKET_STATUSES = frozenset(
    {TicketStatus.DRAFT, TicketStatus.SUBMITTED, TicketStatus.APPROVED, TicketStatus.PROVISIONING}
)
EDITABLE_BY_FILER = frozenset({TicketStatus.DRAFT})
EDITABLE_BY_OPS = frozenset({TicketStatus.DRAFT, TicketStatus.SUBMITTED})


class ServiceType(models.TextChoices):
    CLUSTER_IP = "ClusterIP", _("In-cluster (ClusterIP)")
    LOAD_BALANCER = "LoadBalancer", _("Cloud load balancer (LoadBalancer)")
