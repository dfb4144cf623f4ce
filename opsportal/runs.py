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
- Heartbeats and resume. The message that claims a run becomes its step's holder (``step_task_id``, the
  Celery task id, which a retry keeps) and, while the step works, a thread writes ``heartbeat_at`` every
  RUN_HEARTBEAT_SECONDS; a message queued with a countdown (a retry, the next build poll) sets it to when
  it is due. ``resume_stale`` (beat, every RUN_SWEEP_SECONDS) finds runs in progress whose heartbeat is
  older than RUN_STALE_SECONDS — their worker was killed, or their message was lost — and re-queues the
  step they are in under a new task id, since steps are idempotent; while the heartbeat is fresh, a claim
  in the working status is refused to any other message (a redelivered one, a duplicate). A run whose
  resumes are used up (RUN_MAX_RESUMES), or whose step says it cannot resume, is given up.
- ``fail_stuck`` stays as the last resort: it ends runs without progress (``updated_at``) for longer than
  ``stuck_after(tasks)``, which is derived from the hard time limits of the tasks that work on the run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from observability import events
from observability.services import audit_record
from opsportal.errors import StateConflict
from projects.models import Project

logger = logging.getLogger(__name__)

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
    # Proof that someone looks after the run: the working step's heartbeat, or when its queued message
    # is due. A run in progress whose heartbeat is older than RUN_STALE_SECONDS is resumed.
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The Celery task id of the message holding the current step ("" between steps).
    step_task_id = models.CharField(max_length=64, blank=True, default="")
    # Resumes of the current step by the sweeper; reset when the run moves on.
    resumes = models.PositiveIntegerField(default=0)

    TRANSITIONS: ClassVar[Mapping[str, frozenset[str]]]
    RUNNING_STATUSES: ClassVar[frozenset[str]]  # a worker may be on it, or a message for it is queued
    FINAL_STATUSES: ClassVar[frozenset[str]]  # the run ended (finished_at is set)
    FAILED_STATUS: ClassVar[str]
    EVENT_NAME: ClassVar[str]  # live events are "<name>-changed" and "<name>-progress"
    EVENT_KEY: ClassVar[str]  # the payload key carrying the row's id
    # Lookup from the row to its project's id; None for a run that belongs to no project (a cluster's).
    PROJECT_ID: ClassVar[str | None] = "project_id"

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

    def event_stream(self) -> str:
        """The live stream the run is announced on: its project's, unless the model says otherwise."""
        return events.project_stream(self.project.pk)

    def new_run_token(self) -> uuid.UUID:
        self.run_token = uuid.uuid4()
        return self.run_token


R = TypeVar("R", bound=Run)


# --- reading and announcing -----------------------------------------------------------------------------


def locked(model: type[R], pk: int) -> R:
    """The row, locked for this transaction, with ``.project`` read after the lock (audits need it;
    None for a run of no project)."""
    run = model.objects.select_for_update().filter(pk=pk).first()
    if run is None:
        raise model.DoesNotExist(f"No {model._meta.verbose_name} {pk}.")
    if model.PROJECT_ID is None:
        run.project = None
        return run
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
    """Announce the run on its live stream (its project's) once the transaction commits."""
    events.publish(
        stream=run.event_stream(),
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
    # A new status is a step boundary: the next step's first message may claim it, resumes count anew.
    run.step_task_id, run.resumes, run.heartbeat_at = "", 0, timezone.now()
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


def _current_task_id() -> str:
    from celery import current_task

    return (current_task and current_task.request.id) or ""


def stale_before() -> datetime:
    """A heartbeat older than this means nobody looks after the run any more."""
    return timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)


def claim(model: type[R], pk: int, run_token: str, *, start: str, working: str, verb: str) -> R | None:
    """Take a run for a step: from ``start`` (the first message, which moves it to ``working``), or in
    ``working`` when this message already holds the step (a retry), nobody does (between steps), or the
    holder's heartbeat went stale (a redelivery after the worker died). Returns the locked row, or None
    when this message has nothing to do; a taken run beats its heartbeat until the task ends
    (``opsportal.tasks.run_step``)."""
    if start != working and working not in model.TRANSITIONS[start]:
        raise ValueError(f"{model.__name__} cannot move from {start} to {working}")
    now = timezone.now()
    task_id = _current_task_id()
    with transaction.atomic():
        rows = model.objects.filter(pk=pk, run_token=run_token)
        bump = {
            "attempts": F("attempts") + 1,
            "updated_at": now,
            "heartbeat_at": now,
            "step_task_id": task_id,
        }
        started = start != working and rows.filter(status=start).update(status=working, **bump) == 1
        free = Q(step_task_id="") | Q(step_task_id=task_id) | Q(heartbeat_at__lt=stale_before())
        if not started and not rows.filter(free, status=working).update(**bump):
            return None
        run = locked(model, pk)
        _beat_while_working(model, pk, task_id)
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


def queue(task, *, countdown: float | None = None, task_id: str | None = None, **kwargs) -> None:
    """Send ``task`` once the transaction commits (never for a change that rolls back)."""
    transaction.on_commit(lambda: task.apply_async(kwargs=kwargs, countdown=countdown, task_id=task_id))


# --- the heartbeat --------------------------------------------------------------------------------------

_holding = threading.local()  # the step this thread's task holds: (model, pk, task_id, stop event)


def _beat(model: type[Run], pk: int, task_id: str, at=None) -> None:
    """Write the heartbeat if this task still holds the run; never waits long for the row."""
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
            model.objects.filter(pk=pk, step_task_id=task_id, status__in=model.RUNNING_STATUSES).update(
                heartbeat_at=at or timezone.now()
            )
    except DatabaseError as exc:  # the database is away: the next beat tries again, on a new connection
        logger.warning("heartbeat of %s %s not written: %s", model.__name__, pk, exc)
        connection.close()


def _beat_while_working(model: type[Run], pk: int, task_id: str) -> None:
    """Beat every RUN_HEARTBEAT_SECONDS from a thread until the task ends (``holding``)."""
    if not task_id or getattr(_holding, "step", None) is None:
        return  # not inside run_step (a direct call): nothing to stop the thread, so none is started
    if _holding.step[0] is not None:
        return  # this task already beats
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.RUN_HEARTBEAT_SECONDS):
                _beat(model, pk, task_id)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    _holding.step = (model, pk, task_id, stop, thread)
    thread.start()


@contextmanager
def holding() -> Iterator[None]:
    """The span of one task: a step claimed inside it beats until it ends."""
    _holding.step = (None, None, None, None, None)
    try:
        yield
    finally:
        model, pk, task_id, stop, thread = _holding.step
        _holding.step = None
        if stop is not None:
            stop.set()
            thread.join(timeout=5)


def due_in(countdown: float) -> None:
    """The step this task holds is continued by a message due in ``countdown`` seconds (a retry): its
    heartbeat is set to then, so the sweeper does not resume it before it was due."""
    model, pk, task_id, _stop, _thread = getattr(_holding, "step", None) or (None,) * 5
    if model is not None:
        _beat(model, pk, task_id, at=timezone.now() + timedelta(seconds=countdown))


# --- the sweeper ----------------------------------------------------------------------------------------


def stuck_after(*tasks) -> int:
    """Seconds without a heartbeat after which a run worked on by ``tasks`` is surely abandoned: the
    longest hard time limit among them (Celery has killed a live worker by then) plus a grace."""
    limits = [task.time_limit or settings.CELERY_TASK_TIME_LIMIT for task in tasks]
    return max(limits) + STUCK_GRACE_SECONDS


def resume_stale(
    model: type[R],
    *,
    step_task: Callable[[R], tuple[object, dict] | None],
    give_up: Callable[[int, str, str], object],
    verb: str,
    queued_statuses: frozenset[str] = frozenset(),
) -> tuple[int, int]:
    """Resume every run in progress whose heartbeat is stale: re-queue the task of the step it is in
    (``step_task(run)`` gives the task and its ids, or None when the step cannot be resumed) under a new
    task id that becomes the step's holder. Past RUN_MAX_RESUMES, or when it cannot resume, the run is
    given up: ``give_up(pk, run_token, error)``. Returns (resumed, given up).

    In ``queued_statuses`` a run waits for its next step's first message, which no worker has taken
    (taking it moves the run on): it may be queued behind busy workers, or lost with the broker. It is
    queued again (a duplicate is refused by the claim) but never given up: no worker died on it."""
    resumed = given_up = 0
    stale = model.objects.filter(status__in=model.RUNNING_STATUSES, heartbeat_at__lt=stale_before())
    for pk in stale.values_list("pk", flat=True):
        with transaction.atomic():
            run = locked(model, pk)
            if run.status not in run.RUNNING_STATUSES or run.heartbeat_at >= stale_before():
                continue  # it moved on, or its worker beat, since the query
            waiting = run.status in queued_statuses
            resume = step_task(run) if waiting or run.resumes < settings.RUN_MAX_RESUMES else None
            if resume is not None:
                task, ids = resume
                task_id = str(uuid.uuid4())
                since = run.heartbeat_at
                run.step_task_id, run.heartbeat_at = task_id, timezone.now()
                run.resumes += 0 if waiting else 1
                run.save(update_fields=["step_task_id", "heartbeat_at", "resumes"])
                audit_record(
                    actor=None,
                    verb=verb,
                    target=run,
                    project=run.project,
                    changes={
                        "status": run.status,
                        "resume": run.resumes,
                        "silent_since": since.isoformat(timespec="seconds"),
                    },
                )
                publish(run)
                queue(task, task_id=task_id, **ids)
                resumed += 1
                continue
            token = str(run.run_token)
            error = (
                _("Its worker was lost %(n)s times; it was not resumed again.") % {"n": run.resumes}
                if run.resumes >= settings.RUN_MAX_RESUMES
                else _("Its worker was lost in a step that cannot be resumed.")
            )
        give_up(pk, token, error)
        given_up += 1
    return resumed, given_up


def fail_stuck(model: type[Run], older_than_seconds: int, fail: Callable[[int, str], object]) -> int:
    """Call ``fail(pk, run_token)`` for every run in progress whose heartbeat is older than the cutoff."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = model.objects.filter(status__in=model.RUNNING_STATUSES, updated_at__lt=cutoff)
    count = 0
    for pk, token in stuck.values_list("pk", "run_token"):
        fail(pk, str(token))
        count += 1
    return count
