"""One Run: work that outlives a request, kept on its own row.

Provisioning an onboarding ticket, a release and a configuration change are runs; so is whatever later
needs a worker (Apollo releases, alert deliveries, dashboard syncs). The row holds the state (status,
run token, attempts, progress lines, error, start and end); a Celery message only says "work on run X of
token T", so a message that is late, duplicated or from an older run finds nothing to do.

- ``claim``: the first message moves the run from its start status to its working status with a
  conditional UPDATE (0 rows: another message has it, or the run ended or belongs to a newer token). A
  retried or redelivered message of the same run takes it again in its working status: steps are
  idempotent, and this is how a killed worker's step is resumed.
- ``progress`` appends a log line; ``finish``/``fail`` end the run; every status change goes through
  ``move`` (the model's transition map, an AuditEvent in the same transaction, the live event on commit).
- ``updated_at`` is the heartbeat: every claim, progress line and poll writes it. ``fail_stuck`` ends runs
  whose heartbeat is older than ``stuck_after(tasks)``, which is derived from the hard time limits of the
  tasks that work on the run, so the two cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from observability import events
from observability.services import audit_record
from opsportal.errors import StateConflict
from projects.models import Project

PROGRESS_LIMIT = 200  # log lines kept on a run (the newest)
ERROR_LIMIT = 8000
# On top of a task's hard time limit before its run counts as abandoned: the message may wait in the
# queue, and a transient error's retry waits its countdown.
STUCK_GRACE_SECONDS = 300


class Run(models.Model):
    """The columns every run has. A concrete model adds ``status`` (with choices) and declares how its
    statuses move, which ones mean "in progress" and "ended", and how it is named and announced."""

    run_token = models.UUIDField(default=uuid.uuid4, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    progress = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(gettext_lazy("started"), null=True, blank=True)
    finished_at = models.DateTimeField(gettext_lazy("finished"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    TRANSITIONS: ClassVar[Mapping[str, frozenset[str]]]
    RUNNING_STATUSES: ClassVar[frozenset[str]]  # a worker may be on it, or a message for it is queued
    FINAL_STATUSES: ClassVar[frozenset[str]]  # the run ended (finished_at is set)
    FAILED_STATUS: ClassVar[str]
    EVENT_NAME: ClassVar[str]  # live events are "<name>-changed" and "<name>-progress"
    EVENT_KEY: ClassVar[str]  # the payload key carrying the row's id
    PROJECT_ID: ClassVar[str] = "project_id"  # lookup from the row to its project's id

    class Meta:
        abstract = True

    def can_move_to(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.status]

    @property
    def is_running(self) -> bool:
        return self.status in self.RUNNING_STATUSES

    def run_label(self) -> str:
        """How messages name this run, e.g. "Ticket #4"."""
        raise NotImplementedError

    def event_payload(self) -> dict:
        return {self.EVENT_KEY: self.pk, "status": self.status}

    def new_run_token(self) -> uuid.UUID:
        self.run_token = uuid.uuid4()
        return self.run_token


R = TypeVar("R", bound=Run)


# --- reading and announcing -----------------------------------------------------------------------------


def locked(model: type[R], pk: int) -> R:
    """The row, locked for this transaction, with ``.project`` read after the lock (audits need it)."""
    run = model.objects.select_for_update().filter(pk=pk).first()
    if run is None:
        raise model.DoesNotExist(f"No {model._meta.verbose_name} {pk}.")
    project_id = model.objects.filter(pk=pk).values_list(model.PROJECT_ID, flat=True).get()
    run.project = Project.objects.get(pk=project_id)
    return run


def locked_run(model: type[R], pk: int, run_token: str, status: str | None = None) -> R | None:
    """The row, locked, if this run still owns it and it is in ``status`` (or running); else None.
    A step that gets None stops: the run was cancelled or ended, or a newer run replaced it."""
    run = locked(model, pk)
    if str(run.run_token) != str(run_token):
        return None
    if (status is not None and run.status != status) or (status is None and not run.is_running):
        return None
    return run


def publish(run: Run, event_type: str | None = None, **payload) -> None:
    """Announce the run on its project's live stream once the transaction commits."""
    events.publish(
        stream=events.project_stream(run.project.pk),
        type=event_type or f"{run.EVENT_NAME}-changed",
        payload={**run.event_payload(), **payload},
    )


# --- status changes -------------------------------------------------------------------------------------


def move_status(
    obj,
    to: str,
    *,
    name: str,
    actor,
    verb: str,
    publish: Callable[[], None],
    changes: dict | None = None,
    remote_addr: str | None = None,
) -> None:
    """Check the transition map (the model's can_move_to), save, audit in this transaction, announce.
    The caller holds the row lock."""
    if not obj.can_move_to(to):
        label = obj._meta.get_field("status").choices
        raise StateConflict(
            _("%(name)s is %(status)s; it cannot become %(to)s.")
            % {"name": name, "status": obj.get_status_display(), "to": dict(label).get(to, to)}
        )
    before = obj.status
    obj.status = to
    obj.save()
    audit_record(
        actor=actor,
        verb=verb,
        target=obj,
        project=obj.project,
        changes={"status": [before, to], **(changes or {})},
        remote_addr=remote_addr,
    )
    publish()


# What a kind of run started outside its own row (a release's rollout record, …), ended with the run.
_END_HOOKS: dict[type[Run], list[Callable[[Run, str], None]]] = {}


def on_end(model: type[R]) -> Callable[[Callable[[R, str], None]], Callable[[R, str], None]]:
    """Register ``hook(run, status)``, called in the transaction that moves a ``model`` run into a final
    status, whichever path ends it (its step, a give-up, a cancel, a sweep). A run that ends thereby
    ends everything it started, in the same transaction and with its own audit."""

    def register(hook: Callable[[R, str], None]) -> Callable[[R, str], None]:
        _END_HOOKS.setdefault(model, []).append(hook)
        return hook

    return register


def move(
    run: Run, to: str, *, actor, verb: str, changes: dict | None = None, remote_addr: str | None = None
) -> None:
    """A status change of a locked run; entering a final status stamps ``finished_at`` and ends what the
    run started (``on_end``)."""
    ending = to in run.FINAL_STATUSES
    if ending:
        run.finished_at = timezone.now()
    move_status(
        run,
        to,
        name=run.run_label(),
        actor=actor,
        verb=verb,
        changes=changes,
        remote_addr=remote_addr,
        publish=lambda: publish(run),
    )
    if ending:
        for hook in _END_HOOKS.get(type(run), ()):
            hook(run, to)


def claim(model: type[R], pk: int, run_token: str, *, start: str, working: str, verb: str) -> R | None:
    """Take a run for a step: from ``start`` (the first message, which moves it to ``working``), or in
    ``working`` (a retry or redelivery of the same run). Returns the locked row, or None when this
    message has nothing to do."""
    if start != working and working not in model.TRANSITIONS[start]:
        raise ValueError(f"{model.__name__} cannot move from {start} to {working}")
    now = timezone.now()
    with transaction.atomic():
        rows = model.objects.filter(pk=pk, run_token=run_token)
        bump = {"attempts": F("attempts") + 1, "updated_at": now}
        started = start != working and rows.filter(status=start).update(status=working, **bump) == 1
        if not started and not rows.filter(status=working).update(**bump):
            return None
        run = locked(model, pk)
        if started:
            if run.started_at is None:
                run.started_at = now
                run.save(update_fields=["started_at"])
            audit_record(
                actor=None, verb=verb, target=run, project=run.project, changes={"status": [start, working]}
            )
            publish(run)
        return run


@dataclass(frozen=True)
class Step:
    """One step of a kind of run, declared once beside its service: the status it starts from, the
    status it works in (the same for a step that continues one), and the audit verb of its start."""

    model: type[Run]
    start: str
    working: str
    verb: str

    def claim(self, pk: int, run_token: str) -> Run | None:
        return claim(self.model, pk, run_token, start=self.start, working=self.working, verb=self.verb)


# --- in the worker --------------------------------------------------------------------------------------


def progress(model: type[Run], pk: int, run_token: str, message: str) -> None:
    """Append a line to the run's log and announce it, while this run is in progress."""
    with transaction.atomic():
        run = locked_run(model, pk, run_token)
        if run is None:
            return
        entry = {"at": timezone.now().isoformat(timespec="milliseconds"), "message": message}
        run.progress = [*run.progress, entry][-PROGRESS_LIMIT:]
        run.save(update_fields=["progress", "updated_at"])
        publish(run, f"{run.EVENT_NAME}-progress", message=message)


def finish(run: Run, to: str, *, verb: str, error: str = "", changes: dict | None = None) -> None:
    """End a locked run (see ``locked_run``) in ``to``, keeping ``error`` when it failed."""
    run.error = error[:ERROR_LIMIT]
    if error:
        changes = {"error": error[:500], **(changes or {})}
    move(run, to, actor=None, verb=verb, changes=changes)


def fail(model: type[Run], pk: int, run_token: str, *, error: str, verb: str) -> bool:
    """Fail the run if this token still owns it and it is in progress; False when it had ended."""
    with transaction.atomic():
        run = locked_run(model, pk, run_token)
        if run is None:
            return False
        finish(run, model.FAILED_STATUS, verb=verb, error=error)
        return True


def queue(task, *, countdown: float | None = None, **kwargs) -> None:
    """Send ``task`` once the transaction commits (never for a change that rolls back)."""
    transaction.on_commit(lambda: task.apply_async(kwargs=kwargs, countdown=countdown))


# --- the sweeper ----------------------------------------------------------------------------------------


def stuck_after(*tasks) -> int:
    """Seconds without a heartbeat after which a run worked on by ``tasks`` is surely abandoned: the
    longest hard time limit among them (Celery has killed a live worker by then) plus a grace."""
    limits = [task.time_limit or settings.CELERY_TASK_TIME_LIMIT for task in tasks]
    return max(limits) + STUCK_GRACE_SECONDS


def fail_stuck(model: type[Run], older_than_seconds: int, fail: Callable[[int, str], object]) -> int:
    """Call ``fail(pk, run_token)`` for every run in progress whose heartbeat is older than the cutoff."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = model.objects.filter(status__in=model.RUNNING_STATUSES, updated_at__lt=cutoff)
    count = 0
    for pk, token in stuck.values_list("pk", "run_token"):
        fail(pk, str(token))
        count += 1
    return count
