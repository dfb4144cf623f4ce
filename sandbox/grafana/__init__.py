"""Grafana HTTP API stand-in (folders, data sources, dashboards, annotations); see docs/sandbox.md."""

from sandbox.grafana.server import GrafanaStandin

__all__ = ["GrafanaStandin"]
