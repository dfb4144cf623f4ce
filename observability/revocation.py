"""Tell a user's open WebSockets that their access may have changed, so they re-check it at once.

A socket checks a stream's access when it subscribes and again before delivering, at most every
LIVE_EVENTS_ACCESS_RECHECK_SECONDS; these signals make removal and logout take effect immediately
instead of after that interval."""

import hashlib
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from observability import events
from projects.models import ProjectMember

logger = logging.getLogger(__name__)
ACCESS_CHANGED = "access.changed"


def user_sockets_group(user_id: int) -> str:
    return f"sockets.user.{user_id}"


def session_fingerprint(session_key: str | None) -> str:
    """Names a session on the channel layer without putting the session key (a credential) there."""
    return hashlib.sha256((session_key or "").encode()).hexdigest()


def access_changed(user_id: int | None, *, ended_session: str | None = None) -> None:
    """After the current transaction commits, make the user's sockets re-check their access; the sockets
    of ``ended_session`` (a session key being logged out) close at once."""
    if user_id is None:
        return
    message = {"type": ACCESS_CHANGED}
    if ended_session:
        message["ended_session"] = session_fingerprint(ended_session)

    def notify() -> None:
        try:
            events.send_to_group(user_sockets_group(user_id), message)
        except Exception:
            # The periodic re-check still catches it; a channel layer outage must not fail the removal.
            logger.exception("Could not tell user %s's sockets that their access changed", user_id)

    transaction.on_commit(notify)


@receiver(post_delete, sender=ProjectMember, dispatch_uid="observability.member_deleted")
@receiver(post_save, sender=ProjectMember, dispatch_uid="observability.member_saved")
def _membership_changed(sender, instance, **kwargs):
    access_changed(instance.user_id)


@receiver(post_save, sender=get_user_model(), dispatch_uid="observability.user_saved")
def _user_saved(sender, instance, created, update_fields=None, **kwargs):
    if not created and set(update_fields or ()) != {"last_login"}:
        access_changed(instance.pk)  # deactivated, or groups/superuser changed


@receiver(user_logged_out, dispatch_uid="observability.user_logged_out")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        # Sent before Django flushes the session, so a re-check alone could still find it signed in.
        access_changed(user.pk, ended_session=getattr(request.session, "session_key", None))
