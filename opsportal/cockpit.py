"""The project cockpit: what a developer reads first about a project, for each of its environments.

It reads three apps (projects, clusters, deploys), so it belongs to the wiring, like the dashboard.
Two kinds of reads, kept apart so the page stays cheap:

- ``cockpit_get``: the database only, a fixed number of queries whatever the history's length (the
  running version and since when, what is in flight, the last three releases, the open tickets);
- ``cockpit_live`` (the Deployment and HPA, from the cluster with a short timeout) and
  ``cockpit_traffic`` (request rate and error ratio from Prometheus): each loads in its own fragment
  after the page, and says "unavailable" when its system cannot answer.

The dicts returned here hold plain values only: the page and the API (``GET /api/projects/<name>/cockpit/``)
serve the same data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from clusters.models import Dashboard, ProjectEnvironment
from clusters.selectors.dashboards import dashboard_link
from clusters.selectors.environments import EnvironmentRef, deployment_summary, hpa_summary
from clusters.selectors.monitoring import monitoring_scope
from clusters.services.terminal import terminal_action
from deploys.choices import ACTIVE_RELEASE_STATUSES, OPEN_TICKET_STATUSES, DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, OnboardingTicket, Release
from integrations.errors import IntegrationError
from integrations.kubernetes.client import KubeClient
from integrations.prometheus.client import PrometheusClient
from observability.monitoring.promql import ERROR_RATIO, TRAFFIC, rate_window, render
from projects.access import Action, allowed_actions, get_project
from projects.choices import Environment
from projects.models import Project

RECENT_RELEASES = 3
# The cockpit waits this long for the cluster (connect, read): it is a glance, the environment page
# has the full picture.
LIVE_TIMEOUT = (2.0, 4.0)
SPARKLINE_POINTS = 60
# A release's build console and progress lines can be long; the cockpit shows neither.
_HEAVY = ("console", "progress", "error")


@dataclass(frozen=True)
class Cockpit:
    project: Project
    actions: frozenset[Action]
    data: dict
    environments: dict[str, ProjectEnvironment]  # the onboarded ones, by name


def _release(release: Release) -> dict:
    return {
        "id": release.pk,
        "version": release.version,
        "status": release.status,
        "status_label": str(release.get_status_display()),
        "created_at": release.created_at,
        "created_by": release.created_by.get_username(),
        "confirmed": release.confirmed_by_id is not None,
    }


def _ticket(ticket: OnboardingTicket) -> dict:
    return {
        "id": ticket.pk,
        "environment": ticket.environment,
        "status": ticket.status,
        "status_label": str(ticket.get_status_display()),
        "created_at": ticket.created_at,
    }


def _recent_releases(project: Project, environment: str) -> list[Release]:
    return list(
        Release.objects.filter(project=project, environment=environment)
        .select_related("created_by")
        .defer(*_HEAVY)[:RECENT_RELEASES]
    )


def _dashboard_url(env: ProjectEnvironment | None) -> str | None:
    """Where the environment's Grafana dashboard opens, once it was saved (read with the environment)."""
    try:
        dashboard = env.dashboard if env is not None else None
    except Dashboard.DoesNotExist:
        return None
    return (dashboard_link(dashboard.url) or None) if dashboard is not None and settings.GRAFANA_URL else None


def cockpit_get(*, user, name: str) -> Cockpit:
    """The database part of the cockpit of project ``name``; Http404 for someone who may not see it."""
    project = get_project(user, name=name)
    actions = allowed_actions(user, project)
    environments = {
        env.environment: env
        for env in ProjectEnvironment.objects.filter(project=project, cluster__isnull=False).select_related(
            "cluster", "dashboard"
        )
        if env.namespace
    }
    # The newest successful rollout per environment: what runs there now (PostgreSQL's DISTINCT ON).
    running = {
        record.environment: record
        for record in DeploymentRecord.objects.filter(project=project, outcome=DeploymentOutcome.SUCCEEDED)
        .select_related("release")
        .defer(*(f"release__{field}" for field in _HEAVY))
        .order_by("environment", "-created_at", "-id")
        .distinct("environment")
    }
    rollouts: dict[str, list[DeploymentRecord]] = {}
    for record in (
        DeploymentRecord.objects.filter(project=project, outcome=DeploymentOutcome.RUNNING)
        .select_related("release")
        .defer(*(f"release__{field}" for field in _HEAVY))[:10]
    ):
        rollouts.setdefault(record.environment, []).append(record)
    # At most one active release per environment (a constraint), so this list is short.
    active = {
        release.environment: release
        for release in Release.objects.filter(project=project, status__in=sorted(ACTIVE_RELEASE_STATUSES))
        .select_related("created_by")
        .defer(*_HEAVY)
    }
    # At most one open ticket per environment (a constraint) too.
    open_tickets = list(
        OnboardingTicket.objects.filter(project=project, status__in=sorted(OPEN_TICKET_STATUSES))
        .only("id", "environment", "status", "created_at")
        .order_by("environment")
    )
    tickets_by_env = {ticket.environment: ticket for ticket in open_tickets}

    rows = []
    for value, label in Environment.choices:
        env = environments.get(value)
        record = running.get(value)
        current = record.release if record else None
        in_flight = []
        if value in active:
            in_flight.append({"kind": "release", **_release(active[value])})
        for rollout in rollouts.get(value, []):
            if rollout.release_id != getattr(active.get(value), "pk", None):
                in_flight.append(
                    {
                        "kind": rollout.kind,
                        "id": rollout.release_id,
                        "version": rollout.release.version,
                        "status": ReleaseStatus.DEPLOYING.value,
                        "status_label": str(rollout.get_kind_display()),
                        "created_at": rollout.created_at,
                    }
                )
        awaiting = (
            value == Environment.TEST
            and current is not None
            and current.status == ReleaseStatus.DEPLOYED
            and current.confirmed_by_id is None
        )
        rows.append(
            {
                "environment": value,
                "label": str(label),
                "onboarded": env is not None,
                "namespace": env.namespace if env else "",
                "cluster": env.cluster.name if env else "",
                "running": {
                    "release_id": current.pk,
                    "version": current.version,
                    "since": record.finished_at or record.created_at,
                    "kind": record.kind,
                    "kind_label": str(record.get_kind_display()),
                    "image": record.image,
                }
                if record
                else None,
                "in_flight": in_flight,
                "awaiting_confirmation": {"release_id": current.pk, "version": current.version}
                if awaiting
                else None,
                "releases": [_release(r) for r in _recent_releases(project, value)],
                "open_ticket": _ticket(tickets_by_env[value]) if value in tickets_by_env else None,
                "can_terminal": terminal_action(value) in actions,
                "dashboard_url": _dashboard_url(env),
            }
        )
    data = {
        "project": project.name,
        "environments": rows,
        "open_tickets": {"count": len(open_tickets), "tickets": [_ticket(t) for t in open_tickets]},
    }
    return Cockpit(project=project, actions=actions, data=data, environments=environments)


def cockpit_with_live(found: Cockpit) -> dict:
    """The cockpit's data with each onboarded environment's live parts (``live``, ``traffic``; null for
    an environment not onboarded), as the API serves it on request. Slow by nature: one cluster and
    one Prometheus round trip per environment."""
    data = {**found.data, "environments": []}
    for row in found.data["environments"]:
        env = found.environments.get(row["environment"])
        ref = EnvironmentRef(project=found.project, environment=env, actions=found.actions) if env else None
        data["environments"].append(
            {
                **row,
                "live": cockpit_live(ref) if ref else None,
                "traffic": cockpit_traffic(ref) if ref else None,
            }
        )
    return data


# --- the live parts, one fragment per environment ------------------------------------------------------


def cockpit_live(ref: EnvironmentRef) -> dict:
    """Pods ready of desired and the autoscaler, read from the cluster; ``error`` when it cannot answer."""
    live: dict = {"deployment": None, "hpa": None, "error": ""}
    try:
        with KubeClient.from_cluster(ref.environment.cluster, timeout=LIVE_TIMEOUT) as client:
            deployment = deployment_summary(client.get("Deployment", ref.namespace, ref.name))
            hpa = hpa_summary(client.get("HorizontalPodAutoscaler", ref.namespace, ref.name))
    except IntegrationError as exc:
        live["error"] = str(exc)
        return live
    if deployment:
        live["deployment"] = {
            "ready": deployment["ready_replicas"],
            "desired": deployment["replicas"],
            "rollout": deployment["rollout"]["state"],
        }
    if hpa:
        live["hpa"] = {
            "current": hpa["current_replicas"],
            "min": hpa["min_replicas"],
            "max": hpa["max_replicas"],
            "cpu_current": hpa["cpu_current_utilization"],
            "cpu_target": hpa["cpu_target_utilization"],
        }
    return live


def _series(result: list[dict], start: float, step: float) -> list[float | None]:
    """One number per step (None where Prometheus has none) from a single-series matrix."""
    values: list[float | None] = [None] * SPARKLINE_POINTS
    for series in result[:1]:
        for stamp, text in series.get("values") or []:
            index = round((float(stamp) - start) / step)
            if 0 <= index < SPARKLINE_POINTS:
                try:
                    number = float(text)
                except ValueError:
                    continue
                values[index] = number if number == number else None  # NaN (0/0) is no data
    return values


def cockpit_traffic(ref: EnvironmentRef, *, now: float | None = None) -> dict:
    """The request rate and error ratio of the last ``COCKPIT_SPARKLINE_MINUTES`` minutes.

    ``state`` is ``off`` (no Prometheus configured), ``unavailable`` (it did not answer) or ``ok``."""
    traffic: dict = {"state": "off", "requests": [], "errors": [], "error": "", "minutes": 0}
    client = PrometheusClient.from_settings()
    if client is None:
        return traffic
    minutes = settings.COCKPIT_SPARKLINE_MINUTES
    end = now if now is not None else time.time()
    step = minutes * 60 / SPARKLINE_POINTS
    start = end - step * (SPARKLINE_POINTS - 1)
    window = rate_window(step, settings.PROMETHEUS_SCRAPE_INTERVAL)
    scope = monitoring_scope(ref.environment)
    traffic["minutes"] = minutes
    try:
        for key, template in (("requests", TRAFFIC), ("errors", ERROR_RATIO)):
            result = client.query_range(
                render(template, scope, window_seconds=window), start=start, end=end, step=step
            )
            traffic[key] = _series(result, start, step)
    except IntegrationError as exc:
        traffic.update(state="unavailable", requests=[], errors=[], error=str(exc))
        return traffic
    traffic["state"] = "ok"
    return traffic


def last_value(values: list[float | None]) -> float | None:
    return next((value for value in reversed(values) if value is not None), None)


def sparkline(values: list[float | None], *, width: int = 120, height: int = 24) -> list[str]:
    """SVG polyline ``points`` for ``values``, one polyline per run without gaps; the line spans the
    full width (one x per value) and is scaled to the highest value (a flat line at the bottom when
    all are zero)."""
    if not values:
        return []
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    dx = width / max(len(values) - 1, 1)
    segments, current = [], []
    for index, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
            current = []
            continue
        y = (height - 1) - (height - 2) * (value / top)
        current.append(f"{index * dx:.1f},{y:.1f}")
    if current:
        segments.append(current)
    # A lone point is a dot; draw it as a tiny segment so it shows.
    return [" ".join(s) if len(s) > 1 else f"{s[0]} {s[0]}" for s in segments]
