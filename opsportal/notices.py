"""Workflow notices: "it is your turn" events that the lower layers send without knowing who delivers them.

The sender (a ticket submitted, a release waiting for confirmation, failed or rolled back, a configuration
change applied or failed, a release verified as regressed) calls ``notice_emit``; the notice is sent as a
Django signal once the transaction commits, and the alerting app, which sits above every app, routes it
to channels according to each person's preferences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import models, transaction
from django.dispatch import Signal
from django.utils.translation import gettext_lazy as _


class NoticeKind(models.TextChoices):
    TICKET_SUBMITTED = "ticket-submitted", _("A ticket was submitted")
    RELEASE_AWAITING_CONFIRMATION = (
        "release-awaiting-confirmation",
        _("A test release waits for confirmation"),
    )
    RELEASE_FAILED = "release-failed", _("A release failed")
    RELEASE_ROLLED_BACK = "release-rolled-back", _("A release was rolled back")
    RELEASE_REGRESSED = "release-regressed", _("A release regressed after rollout")
    CONFIG_APPLIED = "config-applied", _("A configuration change was applied")
    CONFIG_FAILED = "config-failed", _("A configuration change failed")


@dataclass(frozen=True)
class Notice:
    kind: str  # a NoticeKind value
    project_id: int
    environment: str  # "test" / "prod", or "" when none applies
    # The portal path of the object (a ticket, a release, a change), made absolute by the sender of messages.
    path: str
    # The person who caused it (not notified of their own action unless also a recipient below).
    actor_id: int | None = None
    # People the notice is for by name (the releaser, the author); role-based recipients (ops, testers,
    # owner) are resolved by the receiver from the kind.
    user_ids: tuple[int, ...] = ()
    # Plain values the message is rendered from (version, ticket number, reason, numbers...).
    context: dict = field(default_factory=dict)


workflow_notice = Signal()  # argument: notice (Notice)


def notice_emit(notice: Notice) -> None:
    """Send ``notice`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: workflow_notice.send(sender=Notice, notice=notice))


def absolute_url(path: str) -> str:
    """The link a message carries: ``path`` under PORTAL_PUBLIC_URL."""
    return f"{settings.PORTAL_PUBLIC_URL}/{path.lstrip('/')}"
