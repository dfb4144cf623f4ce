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


# The worker health check's answers: a stream nobody subscribes to (no access rule is registered for it).
HEALTH_STREAM = "health.0"


class WorkerUnhealthy(Exception):
    pass


def worker_health_answer(*, nonce: str) -> None:
    events.publish(
        stream=HEALTH_STREAM, type="worker-health", payload={"nonce": nonce, "worker": socket.gethostname()}
    )


def worker_health_probe(*, timeout: float, queue: str | None = None) -> float:
    """Prove that the worker runs tasks: send a probe through the broker and wait for the row its task
    writes, until ``timeout``. Returns the round trip in seconds, or raises WorkerUnhealthy. A worker that
    answers `celery inspect ping` with a wedged pool fails this (its pool never runs the probe).

    Called from the ``worker_health`` command (a container health check), never from a request or a task."""
    import uuid

    from observability.models import LiveEvent
    from observability.tasks import answer_health_probe

    nonce = uuid.uuid4().hex
    started = time.monotonic()
    try:
        # Expires: a probe that found the worker wedged is dropped, not run once it recovers.
        answer_health_probe.apply_async(kwargs={"nonce": nonce}, queue=queue, expires=timeout, retry=False)
    except Exception as exc:  # the broker refused or is unreachable: unhealthy, whatever the cause
        raise WorkerUnhealthy(f"The probe could not be sent to the broker: {exc}") from exc
    answers = LiveEvent.objects.filter(stream=HEALTH_STREAM, type="worker-health", payload__nonce=nonce)
    while time.monotonic() - started < timeout:
        if answers.exists():
            elapsed = time.monotonic() - started
            answers.delete()  # probes run every half minute: keep the event table for real events
            return elapsed
        time.sleep(0.2)
    raise WorkerUnhealthy(f"No worker ran the probe within {timeout:g} s.")


def live_events_prune(*, older_than_seconds: int) -> int:
    from datetime import timedelta

    from django.utils import timezone

    from observability.models import LiveEvent

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    deleted, _ = LiveEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
