"""Post-release verification: after a release or promotion has rolled out, compare the new version's error
ratio and p95 latency over the project's window with the same length of time just before the rollout
began (the previous version serving), and conclude verified, regressed or not enough traffic.

The state is on the Release (``verification_status``, ``verification``, ``verified_at``); nothing waits.
Ending deployed schedules one check for the end of the window (``verify_release`` with a countdown); a check
that arrives early queues itself again; transient Prometheus errors are retried by the task; a concluded or
cancelled verification is left alone by any further message, since each write happens only while the
status is still pending (under the row lock). ``verifications_sweep`` queues again the checks whose
message was lost. A regression is announced as a workflow notice and, with the project's auto-rollback on,
rolls back to the deployment before it, with the numbers as the recorded reason.

Every query is a fixed template filled through ``observability.monitoring.promql.render``, which escapes
the label values; the two periods are read with ``increase(...[window])`` evaluated at each period's end.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from deploys.choices import ACTIVE_RELEASE_STATUSES, DeploymentKind, ReleaseStatus, VerificationStatus
from deploys.models import DeploymentRecord, Release
from deploys.services.releases import release_rollback_auto
from deploys.tasks import verify_release as verify_release_task
from integrations.errors import IntegrationError
from integrations.prometheus.client import PrometheusClient
from observability.monitoring.promql import Scope, render
from observability.services import audit_record
from opsportal import runs
from opsportal.notices import Notice, NoticeKind, notice_emit

logger = logging.getLogger(__name__)

# Requests, 5xx answers and the p95 over one period: the common metric names first (Go and PHP services),
# Spring Boot's Micrometer names when those are absent.
REQUESTS = (
    "sum(increase(http_requests_total{{{app}}}[{window}]))"
    " or sum(increase(http_server_requests_seconds_count{{{app}}}[{window}]))"
)
ERRORS = (
    'sum(increase(http_requests_total{{{app},code=~"5.."}}[{window}]))'
    ' or sum(increase(http_server_requests_seconds_count{{{app},status=~"5.."}}[{window}]))'
)
P95 = (
    "histogram_quantile(0.95,"
    " sum by (le) (increase(http_request_duration_seconds_bucket{{{app}}}[{window}])))"
    " or histogram_quantile(0.95,"
    " sum by (le) (increase(http_server_requests_seconds_bucket{{{app}}}[{window}])))"
)
# After the window, wait this many scrapes so that its last samples are in Prometheus.
SETTLE_SCRAPES = 2
# A pending verification whose check is this late (past its due time and the task's retries) lost its
# message: the sweeper queues it again. Past GIVE_UP it is abandoned as unavailable.
SWEEP_LATE_SECONDS = 600
GIVE_UP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Measure:
    """What Prometheus saw of one period. ``p95_seconds`` is None without latency samples."""

    requests: float
    errors: float
    p95_seconds: float | None

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class Thresholds:
    min_requests: int
    error_points: float  # percentage points
    error_factor: float
    latency_ms: int
    latency_factor: float

    @classmethod
    def of(cls, project) -> Thresholds:
        return cls(
            min_requests=project.verification_min_requests,
            error_points=project.verification_error_points,
            error_factor=project.verification_error_factor,
            latency_ms=project.verification_latency_ms,
            latency_factor=project.verification_latency_factor,
        )


def _number(result: list[dict]) -> float | None:
    """The one value of an instant vector, or None when it is empty or not a number."""
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


def verification_measure(
    *, client: PrometheusClient, project: str, environment: str, period: Period
) -> Measure:
    """Requests, 5xx answers and p95 latency of ``project`` in ``environment`` during ``period``."""
    scope = Scope(project=project, env=environment, namespace="", deployment="", hpa="")
    seconds = max(int((period.end - period.start).total_seconds()), 1)
    at = period.end.timestamp()

    def value(template: str) -> float | None:
        return _number(client.query(render(template, scope, window_seconds=seconds), at=at))

    return Measure(
        requests=value(REQUESTS) or 0.0,
        errors=value(ERRORS) or 0.0,
        p95_seconds=value(P95),
    )


def verification_verdict(*, new: Measure, baseline: Measure, thresholds: Thresholds) -> tuple[str, list[str]]:
    """The verdict and, for a regression, its reasons (one line per regressed measure).

    A rise counts only when it is beyond both the absolute and the relative threshold, so that one error
    on a nearly clean baseline, or a millisecond on a fast service, is not a regression. Without a baseline
    (no earlier traffic) the new version is held to the absolute thresholds alone."""
    if new.requests < thresholds.min_requests:
        return VerificationStatus.NOT_ENOUGH_TRAFFIC, []
    has_baseline = baseline.requests >= thresholds.min_requests
    reasons = []
    base_ratio = baseline.error_ratio if has_baseline else 0.0
    if new.error_ratio - base_ratio > thresholds.error_points / 100 and (
        not has_baseline or new.error_ratio > thresholds.error_factor * base_ratio
    ):
        reasons.append(
            _("error ratio %(new)s vs %(base)s baseline")
            % {"new": _percent(new.error_ratio), "base": _percent(base_ratio)}
        )
    if has_baseline and new.p95_seconds is not None and baseline.p95_seconds is not None:
        rise_ms = (new.p95_seconds - baseline.p95_seconds) * 1000
        relative = new.p95_seconds > thresholds.latency_factor * baseline.p95_seconds
        if rise_ms > thresholds.latency_ms and relative:
            reasons.append(
                _("p95 latency %(new)s ms vs %(base)s ms baseline")
                % {"new": round(new.p95_seconds * 1000), "base": round(baseline.p95_seconds * 1000)}
            )
    return (VerificationStatus.REGRESSED if reasons else VerificationStatus.VERIFIED), reasons


def _percent(ratio: float) -> str:
    value = ratio * 100
    return f"{value:.1f}%" if 0 < value < 10 and value != round(value) else f"{value:.0f}%"


# --- the run ----------------------------------------------------------------------------------------------


def _rollout(release: Release) -> DeploymentRecord | None:
    return DeploymentRecord.objects.filter(release=release).exclude(kind=DeploymentKind.ROLLBACK).first()


def _periods(verification: dict) -> tuple[Period, Period]:
    def period(key: str) -> Period:
        return Period(parse_datetime(verification[key]["start"]), parse_datetime(verification[key]["end"]))

    return period("baseline"), period("new")


def _due(verification: dict) -> datetime:
    return parse_datetime(verification["due"])


@runs.on_end(Release)
def _verify_when_deployed(release: Release, status: str) -> None:
    """A release that ends deployed (by its deploy step, or reconciled with its cluster) is verified."""
    if status == ReleaseStatus.DEPLOYED:
        verification_schedule(release=release)


def verification_schedule(*, release: Release, now: datetime | None = None) -> bool:
    """Start verifying a deployed release (the caller holds its row lock): pending, with the two periods
    and the check queued for the end of the window. False when it is not verified (monitoring is off, or
    it was already scheduled)."""
    if not settings.PROMETHEUS_URL or release.verification_status:
        return False
    now = now or timezone.now()
    record = _rollout(release)
    began = (record.created_at if record is not None else release.started_at) or now
    ended = (record.finished_at if record is not None else None) or now
    window = timedelta(seconds=release.project.verification_window_seconds)
    settle = timedelta(seconds=SETTLE_SCRAPES * settings.PROMETHEUS_SCRAPE_INTERVAL)
    due = ended + window + settle
    release.verification_status = VerificationStatus.PENDING
    release.verification = {
        "window_seconds": int(window.total_seconds()),
        "baseline": {"start": (began - window).isoformat(), "end": began.isoformat()},
        "new": {"start": ended.isoformat(), "end": (ended + window).isoformat()},
        "due": due.isoformat(),
    }
    release.verified_at = None
    release.save(update_fields=["verification_status", "verification", "verified_at", "updated_at"])
    audit_record(
        actor=None,
        verb="release.verification.start",
        target=release,
        project=release.project,
        changes={"window_seconds": release.verification["window_seconds"], "until": due.isoformat()},
    )
    runs.publish(release, verification=release.verification_status)
    runs.queue(verify_release_task, release_id=release.pk, countdown=max((due - now).total_seconds(), 0))
    return True


def verification_run(*, release_id: int, now: datetime | None = None) -> str:
    """The check at the end of the window: measure both periods, conclude. Returns the status it left
    (pending when it came early and queued itself again). Prometheus errors propagate: the task retries
    the transient ones and gives up (``verification_give_up``) on the others."""
    release = Release.objects.select_related("project").filter(pk=release_id).first()
    if release is None or release.verification_status != VerificationStatus.PENDING:
        return release.verification_status if release is not None else ""
    now = now or timezone.now()
    due = _due(release.verification)
    if now < due:
        runs.queue(verify_release_task, release_id=release.pk, countdown=(due - now).total_seconds())
        return VerificationStatus.PENDING
    baseline_period, new_period = _periods(release.verification)
    superseded = _superseded(release, new_period)
    if superseded:
        return verification_conclude(
            release_id=release.pk, status=VerificationStatus.NONE, numbers={"skipped": superseded}
        )
    client = PrometheusClient.from_settings()
    if client is None:
        raise IntegrationError(_("Monitoring is off (PROMETHEUS_URL is not set)."), permanent=True)
    name, env = release.project.name, release.environment
    baseline = verification_measure(client=client, project=name, environment=env, period=baseline_period)
    new = verification_measure(client=client, project=name, environment=env, period=new_period)
    status, reasons = verification_verdict(
        new=new, baseline=baseline, thresholds=Thresholds.of(release.project)
    )
    numbers = {
        "new": _numbers(new),
        "baseline": _numbers(baseline),
        "reasons": reasons,
        "measured_at": now.isoformat(),
    }
    return verification_conclude(release_id=release.pk, status=status, numbers=numbers)


def _numbers(measure: Measure) -> dict:
    return {**asdict(measure), "error_ratio": measure.error_ratio}


def _superseded(release: Release, new_period: Period) -> str:
    """Why the new period does not show this release alone, or "": it was rolled back, or something else
    was deployed to the environment before the window ended."""
    if release.status != ReleaseStatus.DEPLOYED:
        return _("The release is %(status)s.") % {"status": release.get_status_display()}
    later = DeploymentRecord.objects.filter(
        project_id=release.project_id,
        environment=release.environment,
        created_at__gt=new_period.start,
        created_at__lt=new_period.end,
    ).exclude(release=release, kind__in=[DeploymentKind.RELEASE, DeploymentKind.PROMOTION])
    if later.exists():
        return _("Another deployment reached %(env)s during the window.") % {"env": release.environment}
    return ""


def verification_conclude(*, release_id: int, status: str, numbers: dict) -> str:
    """Write the verdict if the verification is still pending (else another message concluded it): audit,
    live event, and for a regression the notice and, with auto-rollback on, the rollback."""
    with transaction.atomic():
        release = runs.locked(Release, release_id)
        if release.verification_status != VerificationStatus.PENDING:
            return release.verification_status
        release.verification = {**release.verification, **numbers}
        release.verification_status = status
        release.verified_at = timezone.now()
        rollback = None
        if status == VerificationStatus.REGRESSED:
            rollback = _roll_back_regression(release)
        release.save(update_fields=["verification_status", "verification", "verified_at", "updated_at"])
        audit_record(
            actor=None,
            verb="release.verification.end",
            target=release,
            project=release.project,
            changes={"status": [VerificationStatus.PENDING, status], **numbers},
        )
        runs.publish(release, verification=status)
        if status == VerificationStatus.REGRESSED:
            notice_emit(
                Notice(
                    kind=NoticeKind.RELEASE_REGRESSED,
                    project_id=release.project.pk,
                    environment=release.environment,
                    path=reverse("release-detail", args=[release.project.name, release.pk]),
                    user_ids=(release.created_by_id,),
                    context={
                        "version": release.version,
                        "project": release.project.name,
                        "reasons": numbers.get("reasons", []),
                        "new": numbers.get("new", {}),
                        "baseline": numbers.get("baseline", {}),
                        "window_seconds": release.verification.get("window_seconds"),
                        "rolled_back": rollback is not None,
                        "rollback": release.verification.get("rollback", ""),
                    },
                )
            )
        return status


def _roll_back_regression(release: Release) -> DeploymentRecord | None:
    """With auto-rollback on, roll back to the deployment this release replaced; what happened (or why
    not) goes into ``release.verification["rollback"]``."""
    if not release.project.auto_rollback:
        release.verification["rollback"] = ""
        return None
    reason = _("verification: %(reasons)s") % {"reasons": "; ".join(release.verification.get("reasons", []))}
    record = _rollout(release)
    latest = DeploymentRecord.objects.filter(project=release.project, environment=release.environment).first()
    busy = Release.objects.filter(
        project=release.project, environment=release.environment, status__in=ACTIVE_RELEASE_STATUSES
    ).exists()
    if record is None or latest is None or latest.pk != record.pk or busy:
        release.verification["rollback"] = _("not rolled back: the environment has changed since.")
        return None
    rollback = release_rollback_auto(release, record, reason=reason, changes={"reason": reason})
    if rollback is None:
        release.verification["rollback"] = _("not rolled back: no earlier successful deployment.")
        return None
    release.verification["rollback"] = reason
    release.verification["rollback_record"] = rollback.pk
    return rollback


def verification_give_up(*, release_id: int, error: str) -> None:
    """No verdict can be drawn (Prometheus off, refusing, or down past the retries): say so clearly."""
    verification_conclude(
        release_id=release_id,
        status=VerificationStatus.UNAVAILABLE,
        numbers={"error": _("Prometheus could not be queried: %(error)s") % {"error": error[:500]}},
    )


def verifications_sweep(*, now: datetime | None = None) -> tuple[int, int]:
    """Queue again the checks of pending verifications well past their due time (their message was lost);
    abandon the ones a day late. Returns (queued, abandoned)."""
    now = now or timezone.now()
    queued = abandoned = 0
    pending = Release.objects.filter(verification_status=VerificationStatus.PENDING)
    for pk, verification in pending.values_list("pk", "verification"):
        late = (now - _due(verification)).total_seconds()
        if late > GIVE_UP_SECONDS:
            verification_give_up(release_id=pk, error=_("no check ran within a day of its window"))
            abandoned += 1
        elif late > SWEEP_LATE_SECONDS:
            runs.queue(verify_release_task, release_id=pk)
            queued += 1
    return queued, abandoned
