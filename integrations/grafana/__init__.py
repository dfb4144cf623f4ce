"""Grafana HTTP API client (dashboards, folders, data sources, annotations)."""
