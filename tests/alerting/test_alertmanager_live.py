"""The real path: alerts posted to Debian's Alertmanager (POST /api/v2/alerts, as Prometheus posts them)
→ its webhook receiver → a live portal (Daphne) → Alert rows. Silences made in the portal land in
Alertmanager (GET /api/v2/silences) and stop its notifications; expiring one lets them through again."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from alerting.models import Alert
from observability.models import AuditEvent
from tests.polling import until

pytestmark = pytest.mark.django_db(transaction=True)


def _labels(run: str, alertname: str, **extra) -> dict:
    return {
        "alertname": alertname,
        "project": "orders",
        "env": "test",
        "service": f"orders-{run}",  # one service per test run: its silences match nothing else
        "severity": "critical",
        **extra,
    }


def _rows(run: str, **labels):
    return Alert.objects.filter(
        labels__service=f"orders-{run}", **{f"labels__{k}": v for k, v in labels.items()}
    )


def test_a_notification_reaches_the_portal_once_and_its_resolution_keeps_the_history(
    alertmanager_for_portal, daphne_server, people, settings
):
    _server, am = alertmanager_for_portal(settings, portal_url=daphne_server)
    run = uuid.uuid4().hex[:8]
    started = timezone.now() - timedelta(seconds=5)
    alert = {
        "labels": _labels(run, "ErrorRatioHigh"),
        "annotations": {"summary": "5xx ratio above 5%", "value": "0.3", "threshold": "0.05"},
        "startsAt": started.isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    am.alerts_post([alert])
    row = until("the firing alert in the portal", lambda: _rows(run).first(), timeout=30)
    [in_alertmanager] = am.alerts(filters=[f'service="orders-{run}"'])
    assert row.fingerprint == in_alertmanager["fingerprint"]
    assert (row.status, row.project, row.environment, row.severity) == (
        "firing",
        people.project,
        "test",
        "critical",
    )
    assert row.annotations["value"] == "0.3"

    am.alerts_post([alert])  # Prometheus re-sends a firing alert every evaluation: the same occurrence
    am.alerts_post([{**alert, "endsAt": timezone.now().isoformat()}])
    until("the resolved notification", lambda: _rows(run).filter(status="resolved").exists(), timeout=30)
    row = _rows(run).get()
    assert row.ends_at is not None
    assert list(row.transitions.values_list("status", flat=True)) == ["firing", "resolved"]


def test_a_silence_made_in_the_portal_is_in_alertmanager_stops_notifications_and_is_audited(
    alertmanager_for_portal, daphne_server, people, settings, client
):
    _server, am = alertmanager_for_portal(settings, portal_url=daphne_server)
    run = uuid.uuid4().hex[:8]
    am.alerts_post([{"labels": _labels(run, "LatencyP95High", pod="orders-a")}])
    first = until("the first alert in the portal", lambda: _rows(run, pod="orders-a").first(), timeout=30)

    client.force_login(people.owner)
    response = client.post(
        f"/api/projects/orders/alerts/{first.pk}/silence/",
        {"minutes": 30, "comment": "deploying a fix"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    silence = response.json()
    assert silence["state"] == "active" and silence["created_by"] == people.owner.username
    [stored] = [s for s in am.silences() if s["id"] == silence["id"]]
    assert {m["name"]: m["value"] for m in stored["matchers"]} == {
        "alertname": "LatencyP95High",
        "project": "orders",
        "env": "test",
        "service": f"orders-{run}",
    }
    assert stored["comment"] == "deploying a fix" and stored["createdBy"] == people.owner.username
    audit = AuditEvent.objects.get(verb="alert.silence")
    assert audit.actor == people.owner and audit.changes["silence_id"] == silence["id"]
    listed = client.get("/api/projects/orders/silences/").json()
    assert silence["id"] in [s["id"] for s in listed]

    # A second pod fires the silenced alert; an unsilenced one fires in the same window, as the control.
    am.alerts_post([{"labels": _labels(run, "LatencyP95High", pod="orders-b")}])
    am.alerts_post([{"labels": _labels(run, "PodRestarting", pod="orders-b")}])
    until("the unsilenced alert", lambda: _rows(run, alertname="PodRestarting").exists(), timeout=30)
    until(
        "Alertmanager to mark the second pod silenced",
        lambda: [
            a["status"]
            for a in am.alerts(
                filters=[f'service="orders-{run}"', 'pod="orders-b"', 'alertname="LatencyP95High"']
            )
            if a["status"]["silencedBy"] == [silence["id"]] and a["status"]["state"] == "suppressed"
        ],
        timeout=10,
    )
    time.sleep(3)  # three more group intervals: nothing may arrive for it
    assert not _rows(run, pod="orders-b", alertname="LatencyP95High").exists()

    response = client.delete(f"/api/projects/orders/silences/{silence['id']}/")
    assert response.status_code == 204, response.content
    assert am.silence(silence["id"])["status"]["state"] == "expired"
    assert AuditEvent.objects.filter(verb="alert.silence_expire", changes__silence_id=silence["id"]).exists()
    until(
        "the formerly silenced alert, once the silence expired",
        lambda: _rows(run, pod="orders-b", alertname="LatencyP95High").exists(),
        timeout=30,
    )


def test_a_wrong_token_in_alertmanager_delivers_nothing(
    alertmanager_for_portal, daphne_server, people, settings
):
    server, am = alertmanager_for_portal(settings, portal_url=daphne_server, token="not-the-portal-token")
    run = uuid.uuid4().hex[:8]
    am.alerts_post([{"labels": _labels(run, "TargetDown")}])
    until(
        "Alertmanager to record the refused notification",
        lambda: "403" in server.log_file.read_text(errors="replace"),
        timeout=30,
    )
    assert not _rows(run).exists()
