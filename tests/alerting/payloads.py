"""Alertmanager webhook payloads (version 4) for the tests, starting from the one captured from Debian's
0.25 (../shared/reference/integrations-2.md, section D)."""

from __future__ import annotations

import copy

CAPTURED = {
    "receiver": "portal",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighErrorRatio",
                "env": "test",
                "project": "go-hello",
                "severity": "critical",
            },
            "annotations": {"summary": "5xx ratio above 5% for go-hello"},
            "startsAt": "2026-11-30T02:59:16.182Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://vm:19090/graph?g0.expr=%E2%80%A6&g0.tab=1",
            "fingerprint": "4d9e5bdac7ef73a4",
        }
    ],
    "groupLabels": {"alertname": "HighErrorRatio", "env": "test", "project": "go-hello"},
    "commonLabels": {
        "alertname": "HighErrorRatio",
        "env": "test",
        "project": "go-hello",
        "severity": "critical",
    },
    "commonAnnotations": {"summary": "5xx ratio above 5% for go-hello"},
    "externalURL": "http://vm:19093",
    "version": "4",
    "groupKey": '{}:{alertname="HighErrorRatio", env="test", project="go-hello"}',
    "truncatedAlerts": 0,
}


def notification(*, project: str = "go-hello", resolved: bool = False, **alert_overrides) -> dict:
    """The captured notification for ``project``; ``resolved`` makes it the resolved post that came later
    (same fingerprint and startsAt, an endsAt)."""
    payload = copy.deepcopy(CAPTURED)
    alert = payload["alerts"][0]
    alert["labels"]["project"] = project
    if resolved:
        payload["status"] = alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-30T02:59:31.182Z"
    alert.update(alert_overrides)
    return payload


def make_alert(project, *, alertname: str = "ErrorRatioHigh", environment: str = "prod", **fields):
    """A firing Alert row of ``project`` as the receiver would store it (started a few minutes ago)."""
    from datetime import timedelta

    from django.utils import timezone

    from alerting.models import Alert, AlertTransition

    labels = {"alertname": alertname, "project": project.name, "env": environment, "service": project.name}
    values = {
        "fingerprint": "0123456789abcdef",
        "starts_at": timezone.now() - timedelta(minutes=3),
        "status": "firing",
        "severity": "critical",
        "labels": labels,
        "annotations": {"summary": f"{alertname} on {project.name}"},
        **fields,
    }
    alert = Alert.objects.create(alertname=alertname, project=project, environment=environment, **values)
    AlertTransition.objects.create(alert=alert, status="firing", at=alert.starts_at)
    return alert
