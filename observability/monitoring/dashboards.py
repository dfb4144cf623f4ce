"""The Grafana dashboard of one environment, as a plain dict for Grafana's HTTP API (pure: no I/O).

The same panels as the environment page (``promql.PANELS``), one timeseries panel each, two per row,
with the expressions Grafana should run (``$__rate_interval``) and Grafana's ``legendFormat``. Uids are
derived from the project and environment, so a second sync updates the same dashboard.
"""

from __future__ import annotations

import hashlib
import re

from django.utils import translation

from observability.monitoring.promql import PANELS, Scope, panel_queries

UID_MAX = 40  # Grafana's limit for dashboard and folder uids
_UID_CHARS = re.compile(r"[^a-zA-Z0-9-]")
_PLAIN = re.compile(r"[a-z0-9-]+")
HASH_CHARS = 20
DASHBOARD_PREFIX = "svc-"
FOLDER_PREFIX = "opsportal-"
TAG = "opsportal"
PANEL_WIDTH, PANEL_HEIGHT = 12, 8  # Grafana's grid is 24 wide: two panels per row
REFRESH = "30s"
TIME_RANGE = {"from": "now-6h", "to": "now"}
SCHEMA_VERSION = 39
# Grafana's built-in annotation query: with "type": "dashboard" it shows the annotations saved on this
# dashboard, which is where the portal writes its release and rollback markers.
RELEASE_ANNOTATIONS = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": False,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Releases",
    "type": "dashboard",
}


def _uid(prefix: str, *parts: str) -> str:
    """``prefix`` + the parts joined by '-' when that fits and uses only ``[a-z0-9-]`` (project names are
    DNS labels, environments test|prod); else a readable start, '_' and 80 bits of a hash of the parts.
    A plain uid never holds '_' and a hashed one always does, so distinct inputs keep distinct uids
    (a long project name cannot be made to collide with a short one)."""
    plain = prefix + "-".join(parts)
    if len(plain) <= UID_MAX and _PLAIN.fullmatch("-".join(parts)):
        return plain
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:HASH_CHARS]
    readable = _UID_CHARS.sub("-", "-".join(parts))[: UID_MAX - len(prefix) - len(digest) - 1]
    return f"{prefix}{readable}_{digest}"


def dashboard_uid(project: str, env: str) -> str:
    """The dashboard of ``project`` in ``env``: at most 40 characters of ``[a-zA-Z0-9_-]``, stable."""
    return _uid(DASHBOARD_PREFIX, project, env)


def folder_uid(project: str) -> str:
    """The project's folder, which holds its environments' dashboards."""
    return _uid(FOLDER_PREFIX, project)


def dashboard_title(project: str, env: str) -> str:
    return f"{project} ({env})"


def _target(ref_id: str, legend: str, expr: str, datasource: dict) -> dict:
    return {"refId": ref_id, "datasource": datasource, "expr": expr, "legendFormat": legend, "range": True}


def build_dashboard(scope: Scope, *, datasource_uid: str, title: str) -> dict:
    """The dashboard model for ``scope``; send it as ``{"dashboard": …}`` to ``POST /api/dashboards/db``."""
    datasource = {"type": "prometheus", "uid": datasource_uid}
    panels = []
    with translation.override("en"):  # Grafana is shared by people of every language; titles in English
        for index, panel in enumerate(PANELS):
            targets = [
                _target(chr(ord("A") + n), legend, expr, datasource)
                for n, (legend, expr) in enumerate(panel_queries(panel, scope, grafana=True))
            ]
            panels.append(
                {
                    "id": index + 1,
                    "type": "timeseries",
                    "title": str(panel.title),
                    "description": str(panel.description),
                    "datasource": datasource,
                    "gridPos": {
                        "h": PANEL_HEIGHT,
                        "w": PANEL_WIDTH,
                        "x": (index % 2) * PANEL_WIDTH,
                        "y": (index // 2) * PANEL_HEIGHT,
                    },
                    "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                    "options": {
                        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "none"},
                    },
                    "targets": targets,
                }
            )
    return {
        "uid": dashboard_uid(scope.project, scope.env),
        "title": title,
        "tags": [TAG, scope.project, scope.env],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "editable": False,  # the portal rewrites it on every sync: edits in Grafana would be lost
        "refresh": REFRESH,
        "time": dict(TIME_RANGE),
        "templating": {"list": []},
        "annotations": {"list": [dict(RELEASE_ANNOTATIONS)]},
        "panels": panels,
    }
