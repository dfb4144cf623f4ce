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


class ReleaseStatus(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    TAGGING = "tagging", _("Tagging")
    BUILDING = "building", _("Building")
    BUILT = "built", _("Built")
    DEPLOYING = "deploying", _("Deploying")
    DEPLOYED = "deployed", _("Deployed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    ROLLED_BACK = "rolled_back", _("Rolled back")


class VerificationStatus(models.TextChoices):
    """What post-release verification concluded about a deployed release ("" until it starts)."""

    NONE = "", _("Not verified")
    PENDING = "pending", _("Verifying")
    VERIFIED = "verified", _("Verified")
    REGRESSED = "regressed", _("Regressed")
    NOT_ENOUGH_TRAFFIC = "not_enough_traffic", _("Not enough traffic")
    # Prometheus could not answer (off, down past the retries, or a query it refused): no verdict.
    UNAVAILABLE = "unavailable", _("Could not verify")


RELEASE_TRANSITIONS: dict[str, frozenset[str]] = {
    ReleaseStatus.SUBMITTED: frozenset(
        {ReleaseStatus.TAGGING, ReleaseStatus.DEPLOYING, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED}
    ),
    ReleaseStatus.TAGGING: frozenset({ReleaseStatus.BUILDING, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED}),
    ReleaseStatus.BUILDING: frozenset({ReleaseStatus.BUILT, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED}),
    ReleaseStatus.BUILT: frozenset({ReleaseStatus.DEPLOYING, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED}),
    ReleaseStatus.DEPLOYING: frozenset({ReleaseStatus.DEPLOYED, ReleaseStatus.FAILED}),
    ReleaseStatus.DEPLOYED: frozenset({ReleaseStatus.ROLLED_BACK}),
    ReleaseStatus.FAILED: frozenset({ReleaseStatus.ROLLED_BACK}),
    ReleaseStatus.CANCELLED: frozenset(),
    ReleaseStatus.ROLLED_BACK: frozenset(),
}
# At most one release per project environment is in one of these states.
ACTIVE_RELEASE_STATUSES = frozenset(
    {
        ReleaseStatus.SUBMITTED,
        ReleaseStatus.TAGGING,
        ReleaseStatus.BUILDING,
        ReleaseStatus.BUILT,
        ReleaseStatus.DEPLOYING,
    }
)


class DeploymentKind(models.TextChoices):
    RELEASE = "release", _("Release")
    PROMOTION = "promotion", _("Promotion from test")
    ROLLBACK = "rollback", _("Rollback")


class DeploymentOutcome(models.TextChoices):
    RUNNING = "running", _("Rolling out")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class RolloutStatus(models.TextChoices):
    """A log proxy rollout: the proxy's source tagged, built into an image, applied to a cluster."""

    QUEUED = "queued", _("Queued")
    TAGGING = "tagging", _("Tagging")
    BUILDING = "building", _("Building")
    BUILT = "built", _("Built")
    APPLYING = "applying", _("Applying")
    DEPLOYED = "deployed", _("Deployed")
    FAILED = "failed", _("Failed")


ROLLOUT_TRANSITIONS: dict[str, frozenset[str]] = {
    RolloutStatus.QUEUED: frozenset({RolloutStatus.TAGGING, RolloutStatus.FAILED}),
    RolloutStatus.TAGGING: frozenset({RolloutStatus.BUILDING, RolloutStatus.FAILED}),
    RolloutStatus.BUILDING: frozenset({RolloutStatus.BUILT, RolloutStatus.FAILED}),
    RolloutStatus.BUILT: frozenset({RolloutStatus.APPLYING, RolloutStatus.FAILED}),
    RolloutStatus.APPLYING: frozenset({RolloutStatus.DEPLOYED, RolloutStatus.FAILED}),
    RolloutStatus.DEPLOYED: frozenset(),
    RolloutStatus.FAILED: frozenset(),
}
# At most one rollout per log pipeline is in one of these states.
ACTIVE_ROLLOUT_STATUSES = frozenset(
    {
        RolloutStatus.QUEUED,
        RolloutStatus.TAGGING,
        RolloutStatus.BUILDING,
        RolloutStatus.BUILT,
        RolloutStatus.APPLYING,
    }
)
