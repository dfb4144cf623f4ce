"""DORA metrics of a project (or of all projects) in one environment, over a period [start, end).

It reads deploys (the deployment history, the releases' commit time and verification verdict) and
alerting (critical alerts), so it belongs to the wiring, like the cockpit. Pure computation over the
database: a fixed number of queries whatever the period, every figure derived from the rows below.

The unit is a *deployment*: a DeploymentRecord of kind release or promotion (a rollback is not a
deployment: it puts an earlier change back, and is what restores service). The definitions the page
and the API show are ``DEFINITIONS``; the code below follows them word for word.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from alerting.choices import AlertStatus, Severity
from alerting.models import Alert
from deploys.choices import DeploymentKind, DeploymentOutcome, VerificationStatus
from deploys.models import DeploymentRecord
from projects.access import get_project, require_ops
from projects.models import Project

PERIOD_DAYS = (7, 30, 90)  # the page's choices
DEFAULT_DAYS = 30
MAX_DAYS = 366
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
DEPLOYMENT_KINDS = (DeploymentKind.RELEASE, DeploymentKind.PROMOTION)

# The causes a deployment can have failed of, in the order the page lists them.
ROLLOUT_FAILED = "rollout_failed"
REGRESSED = "regressed"
ROLLED_BACK = "rolled_back"
CRITICAL_ALERT = "critical_alert"
CAUSES = (ROLLOUT_FAILED, REGRESSED, ROLLED_BACK, CRITICAL_ALERT)
CAUSE_LABELS = {
    ROLLOUT_FAILED: _("rollout failed"),
    REGRESSED: _("verification: regressed"),
    ROLLED_BACK: _("rolled back"),
    CRITICAL_ALERT: _("critical alert"),
}

DEFINITIONS = {
    "deployment": _(
        "A deployment is a release or a promotion rolled out to the environment. A rollback is not a "
        "deployment: it puts an earlier change back. A deployment belongs to the period in which its "
        "rollout ended."
    ),
    "deployment_frequency": _(
        "Deployment frequency: the deployments whose rollout succeeded in the period, divided by the "
        "period's length in days (per day) and multiplied by 7 (per week)."
    ),
    "lead_time": _(
        "Lead time for changes: for each successful deployment in the period, from the time of its commit "
        "in GitLab (read when the release was tagged) to the end of its rollout. Shown as the median and "
        "the 90th percentile (nearest rank). Deployments whose commit time is unknown are left out and "
        "counted apart."
    ),
    "change_failure_rate": _(
        "Change failure rate: failed deployments divided by the deployments whose rollout ended "
        "(succeeded or failed) in the period. A deployment failed when its rollout failed, when post-release "
        "verification found it regressed, when the environment was rolled back, or when a critical alert "
        "of the project in the environment started; the last two count from the start of its rollout until "
        "the next deployment's rollout started."
    ),
    "time_to_restore": _(
        "Time to restore: for each failed deployment in the period, from the failure (the earliest of: its "
        "rollout failing, the regression verdict, the rollback starting, the first critical alert starting) "
        "to the restore: the first later rollout in the environment (a rollback or a new deployment) that "
        "succeeded after the failure or, when a critical alert was the first sign, that alert's resolution "
        "if it came sooner. Shown as the median and the 90th percentile (nearest rank); failures not "
        "restored yet are counted apart."
    ),
}


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``share`` of all values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


# --- reading -------------------------------------------------------------------------------------------


def _records(projects: list[int] | None, environment: str, period: Period) -> list[DeploymentRecord]:
    """What the period needs of the history: every rollout that ended in it or after it, or is still
    running (the later ones bound the windows and restore the failures)."""
    records = DeploymentRecord.objects.filter(environment=environment).filter(
        Q(finished_at__gte=period.start)
        | Q(created_at__gte=period.start)
        | Q(outcome=DeploymentOutcome.RUNNING)
    )
    if projects is not None:
        records = records.filter(project_id__in=projects)
    return list(
        records.select_related("release", "project")
        .only(
            "project__name",
            "environment",
            "kind",
            "outcome",
            "created_at",
            "finished_at",
            "release__version",
            "release__committed_at",
            "release__verification_status",
            "release__verified_at",
        )
        .order_by("created_at", "id")
    )


def _critical_alerts(projects: list[int] | None, environment: str, since: datetime) -> list[Alert]:
    alerts = Alert.objects.filter(
        environment=environment, severity=Severity.CRITICAL, starts_at__gte=since, project__isnull=False
    )
    if projects is not None:
        alerts = alerts.filter(project_id__in=projects)
    return list(alerts.only("project_id", "starts_at", "ends_at", "status").order_by("starts_at", "id"))


# --- one project's history -----------------------------------------------------------------------------


def _first(moments) -> datetime | None:
    return min((m for m in moments if m is not None), default=None)


def _judge(index: int, deployments, rollbacks, alerts, records) -> dict:
    """One deployment: its lead time, whether and why it failed, when, and when service came back."""
    record = deployments[index]
    release = record.release
    following = deployments[index + 1] if index + 1 < len(deployments) else None
    window_end = following.created_at if following is not None else None

    def in_window(moment: datetime) -> bool:
        return moment >= record.created_at and (window_end is None or moment < window_end)

    signals: dict[str, datetime] = {}
    if record.outcome == DeploymentOutcome.FAILED:
        signals[ROLLOUT_FAILED] = record.finished_at
    if release.verification_status == VerificationStatus.REGRESSED:
        signals[REGRESSED] = release.verified_at or record.finished_at
    rollback = next((r for r in rollbacks if in_window(r.created_at)), None)
    if rollback is not None:
        signals[ROLLED_BACK] = rollback.created_at
    alert = next((a for a in alerts if in_window(a.starts_at)), None)
    if alert is not None:
        signals[CRITICAL_ALERT] = alert.starts_at

    failed_at = _first(signals.values())
    restored_at = None
    if failed_at is not None:
        restored_at = _first(
            other.finished_at
            for other in records
            if other.pk != record.pk
            and other.outcome == DeploymentOutcome.SUCCEEDED
            and other.created_at >= record.created_at
            and other.finished_at is not None
            and other.finished_at > failed_at
        )
        if (
            alert is not None
            and signals[CRITICAL_ALERT] == failed_at
            and alert.status == AlertStatus.RESOLVED
            and alert.ends_at is not None
            and alert.ends_at > failed_at
        ):
            restored_at = _first([restored_at, alert.ends_at])

    succeeded = record.outcome == DeploymentOutcome.SUCCEEDED
    lead_time = None
    if succeeded and release.committed_at is not None:
        lead_time = (record.finished_at - release.committed_at).total_seconds()
    return {
        "record_id": record.pk,
        "release_id": record.release_id,
        "project": record.project.name,
        "version": release.version,
        "kind": record.kind,
        "outcome": record.outcome,
        "started_at": record.created_at,
        "finished_at": record.finished_at,
        "committed_at": release.committed_at,
        "lead_time_seconds": lead_time,
        "failed": failed_at is not None,
        "causes": [cause for cause in CAUSES if cause in signals],
        "failed_at": failed_at,
        "restored_at": restored_at,
        "restore_seconds": (restored_at - failed_at).total_seconds() if restored_at else None,
    }


def _project_changes(records: list[DeploymentRecord], alerts: list[Alert], period: Period) -> list[dict]:
    deployments = [r for r in records if r.kind in DEPLOYMENT_KINDS]
    rollbacks = [r for r in records if r.kind == DeploymentKind.ROLLBACK]
    return [
        _judge(index, deployments, rollbacks, alerts, records)
        for index, record in enumerate(deployments)
        if record.outcome != DeploymentOutcome.RUNNING and record.finished_at in period
    ]


# --- figures -------------------------------------------------------------------------------------------


def _figures(changes: list[dict], period: Period) -> dict:
    succeeded = [c for c in changes if c["outcome"] == DeploymentOutcome.SUCCEEDED]
    lead_times = [c["lead_time_seconds"] for c in succeeded if c["lead_time_seconds"] is not None]
    failed = [c for c in changes if c["failed"]]
    restores = [c["restore_seconds"] for c in failed if c["restore_seconds"] is not None]
    days = period.days
    return {
        "deployment_frequency": {
            "deployments": len(succeeded),
            "per_day": len(succeeded) / days,
            "per_week": len(succeeded) / days * 7,
        },
        "lead_time": {
            "count": len(lead_times),
            "without_commit_time": len(succeeded) - len(lead_times),
            "median_seconds": median(lead_times),
            "p90_seconds": percentile(lead_times, 0.9),
        },
        "change_failure_rate": {
            "deployments": len(changes),
            "failed": len(failed),
            "rate": len(failed) / len(changes) if changes else None,
            "causes": {cause: sum(cause in c["causes"] for c in failed) for cause in CAUSES},
        },
        "time_to_restore": {
            "count": len(restores),
            "unrestored": len(failed) - len(restores),
            "median_seconds": median(restores),
            "p90_seconds": percentile(restores, 0.9),
        },
    }


def _daily(changes: list[dict], period: Period) -> list[dict]:
    """Deployments and failed deployments per day of the period (days counted from its start)."""
    count = max(math.ceil(period.days), 1)
    days = [{"start": period.start + timedelta(days=n), "deployments": 0, "failed": 0} for n in range(count)]
    for change in changes:
        index = int((change["finished_at"] - period.start).total_seconds() // 86400)
        if change["outcome"] == DeploymentOutcome.SUCCEEDED:
            days[index]["deployments"] += 1
        if change["failed"]:
            days[index]["failed"] += 1
    return days


def _report(changes: list[dict], period: Period, environment: str) -> dict:
    return {
        "environment": environment,
        "start": period.start,
        "end": period.end,
        "days": period.days,
        **_figures(changes, period),
        "daily": _daily(changes, period),
        "definitions": {key: str(text) for key, text in DEFINITIONS.items()},
    }


def _compute(projects: list[int] | None, environment: str, period: Period) -> dict[int, list[dict]]:
    records = _records(projects, environment, period)
    since = min((r.created_at for r in records), default=period.start)
    alerts = _critical_alerts(projects, environment, since)
    by_project: dict[int, list[DeploymentRecord]] = {}
    for record in records:
        by_project.setdefault(record.project_id, []).append(record)
    alerts_by_project: dict[int, list[Alert]] = {}
    for alert in alerts:
        alerts_by_project.setdefault(alert.project_id, []).append(alert)
    return {
        project_id: _project_changes(history, alerts_by_project.get(project_id, []), period)
        for project_id, history in by_project.items()
    }


def dora_project(*, user, name: str, environment: str, period: Period) -> tuple[Project, dict]:
    """The DORA figures of project ``name`` in ``environment``; Http404 for someone who may not see it.
    ``changes`` lists every deployment counted, with what was concluded about it."""
    project = get_project(user, name=name)
    changes = _compute([project.pk], environment, period).get(project.pk, [])
    return project, {"project": project.name, **_report(changes, period, environment), "changes": changes}


def dora_overview(*, user, environment: str, period: Period) -> dict:
    """Every project's figures in ``environment`` and all projects' together, with the deployments
    counted (``changes``, oldest first); ops only: Http404 for anyone else."""
    require_ops(user)
    by_project = _compute(None, environment, period)
    names = dict(Project.objects.values_list("pk", "name"))
    rows = [
        {"project": names[project_id], **_figures(changes, period)}
        for project_id, changes in by_project.items()
        if changes
    ]
    rows.sort(key=lambda row: row["project"])
    pooled = [change for changes in by_project.values() for change in changes]
    pooled.sort(key=lambda change: change["finished_at"])
    return {**_report(pooled, period, environment), "projects": rows, "changes": pooled}


def period_ending(end: datetime, days: int) -> Period:
    return Period(start=end - timedelta(days=days), end=end)


def duration_text(seconds: float | None) -> str:
    """A duration for people, in its two largest units ("2 d 3 h", "4 h 10 min", "45 s"); "—" for none."""
    if seconds is None:
        return "—"
    total = round(seconds)
    parts = [
        (total // 86400, _("%(n)d d")),
        (total % 86400 // 3600, _("%(n)d h")),
        (total % 3600 // 60, _("%(n)d min")),
        (total % 60, _("%(n)d s")),
    ]
    shown = [str(unit) % {"n": n} for n, unit in parts if n][:2]
    return " ".join(shown) or str(_("%(n)d s")) % {"n": 0}


def chart_data(report: dict) -> dict:
    """The charts' columns as uPlot reads them (x in Unix seconds): deployments and failures per day,
    and each deployment's lead time and each failure's time to restore, in hours. A day is drawn at its
    middle, so its bars stand inside it."""
    changes = report.get("changes", [])
    lead = sorted((c for c in changes if c["lead_time_seconds"] is not None), key=lambda c: c["finished_at"])
    restored = sorted((c for c in changes if c["restore_seconds"] is not None), key=lambda c: c["failed_at"])
    return {
        "start": report["start"].timestamp(),
        "end": report["end"].timestamp(),
        "daily": [
            [day["start"].timestamp() + 43200 for day in report["daily"]],
            [day["deployments"] for day in report["daily"]],
            [day["failed"] for day in report["daily"]],
        ],
        "lead_time": [
            [c["finished_at"].timestamp() for c in lead],
            [c["lead_time_seconds"] / 3600 for c in lead],
        ],
        "restore": [
            [c["failed_at"].timestamp() for c in restored],
            [c["restore_seconds"] / 3600 for c in restored],
        ],
        "labels": {
            "deployments": str(_("Deployments")),
            "failed": str(_("Failed deployments")),
            "lead_time": str(_("Lead time (hours)")),
            "restore": str(_("Time to restore (hours)")),
            "no_data": str(_("Nothing in this period.")),
        },
    }
