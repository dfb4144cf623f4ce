"""What the environment page and API say about the environment's Grafana dashboard."""

from __future__ import annotations

from django.conf import settings

from clusters.models import Dashboard, ProjectEnvironment

OFF = "off"  # Grafana is not configured (GRAFANA_URL empty)
NONE = "none"  # configured, but no sync was ever requested for this environment


def dashboard_link(path: str) -> str:
    """Grafana's path of a dashboard as people open it (GRAFANA_PUBLIC_URL, else GRAFANA_URL)."""
    base = (settings.GRAFANA_PUBLIC_URL or settings.GRAFANA_URL).rstrip("/")
    return f"{base}{path}" if path and base else ""


def dashboard_summary(environment: ProjectEnvironment) -> dict:
    """``status`` (off, none, pending, syncing, synced, failed), ``url`` (the link, or None before the
    first save), ``error``, ``version`` and ``uid``. A dashboard saved once keeps its link while a new
    sync is pending: the old version is still there to look at."""
    if not settings.GRAFANA_URL:
        return {"status": OFF, "url": None, "error": "", "version": None, "uid": None}
    dashboard = Dashboard.objects.filter(environment=environment).first()
    if dashboard is None:
        return {"status": NONE, "url": None, "error": "", "version": None, "uid": None}
    return {
        "status": dashboard.status,
        "url": dashboard_link(dashboard.url) or None,
        "error": dashboard.error,
        "version": dashboard.version or None,
        "uid": dashboard.uid,
    }
