import re
import socket
import time

from django.db import models, transaction

from observability import events
from observability.models import AuditEvent

_SECRET_KEY_RE = re.compile(r"(password|passwd|secret|token|credential|kubeconfig|private|api_key)", re.I)
REDACTED = "[redacted]"
# Keys that by construction hold only the names of secret environment variables, never values: the
# audit trail must say which secrets changed, and their keys would otherwise match the pattern above.
_NAME_ONLY_KEYS = frozenset({"secret_env_names", "secret_env_changes"})


def redact(value):
    """Blank out anything under a secret-looking key, at any depth — including NAME=value pairs such as
    environment variables ([["DB_PASSWORD", "…"]])."""
    if isinstance(value, dict):
        return {
            k: v if k in _NAME_ONLY_KEYS else REDACTED if _SECRET_KEY_RE.search(str(k)) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and _SECRET_KEY_RE.search(value[0]):
            return [value[0], REDACTED]
        return [redact(v) for v in value]
    return value


def changes_between(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields whose values differ."""
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def audit_record(
    *,
    actor,
    verb: str,
    target: models.Model,
    project=None,
    changes: dict | None = None,
    remote_addr: str | None = None,
) -> AuditEvent:
    """Record an action. Call it inside the transaction of the action it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the action it records.")
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if is_user else None,
        actor_name=actor.get_username() if is_user else "system",
        verb=verb,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_repr=str(target)[:255],
        project=project,
        project_name=project.name if project is not None else "",
        changes=redact(changes or {}),
        remote_addr=remote_addr,
    )


def worker_ping(*, user) -> None:
    """Ask the background worker to answer on the user's live stream (a health check that shows
    the whole path: web → broker → worker → live event → browser)."""
    from observability.tasks import answer_worker_ping

    sent_at = time.time()
    transaction.on_commit(lambda: answer_worker_ping.delay(user_id=user.pk, sent_at=sent_at))


def worker_ping_answer(*, user_id: int, sent_at: float) -> None:
    events.publish(
        stream=events.user_stream(user_id),
        type="worker-pong",
        payload={"worker": socket.gethostname(), "latency_ms": round((time.time() - sent_at) * 1000)},
    )


def live_events_prune(*, older_than_seconds: int) -> int:
    from datetime import timedelta

    from django.utils import timezone

    from observability.models import LiveEvent

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    deleted, _ = LiveEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
