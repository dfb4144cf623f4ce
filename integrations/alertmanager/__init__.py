"""Alertmanager's v2 HTTP API (alerts and silences)."""

from integrations.alertmanager.client import AlertmanagerClient, Matcher

__all__ = ["AlertmanagerClient", "Matcher"]
