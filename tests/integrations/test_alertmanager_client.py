"""integrations.alertmanager against Debian's real Alertmanager: silences (create, read, list by matcher,
expire), alerts (post, read), and its errors as the typed ones of integrations.errors."""

from datetime import UTC, datetime, timedelta

import pytest

from integrations.alertmanager import AlertmanagerClient, Matcher
from integrations.errors import Invalid, Unreachable
from sandbox.procs import free_port


@pytest.fixture
def am(alertmanager_server) -> AlertmanagerClient:
    return AlertmanagerClient(alertmanager_server.url)


def test_a_silence_is_created_listed_by_matcher_and_expired(am):
    now = datetime.now(UTC)
    silence_id = am.silence_create(
        matchers=[Matcher("project", "client-test"), Matcher("alertname", "Client.*", is_regex=True)],
        starts_at=now,
        ends_at=now + timedelta(minutes=5),
        created_by="tester",
        comment="client test",
    )
    silence = am.silence(silence_id)
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "tester"
    assert {"name": "alertname", "value": "Client.*", "isRegex": True, "isEqual": True} in silence["matchers"]
    assert [s["id"] for s in am.silences(filters=['project="client-test"'])] == [silence_id]
    assert silence_id not in [s["id"] for s in am.silences(filters=['project="nobody"'])]
    am.silence_expire(silence_id)
    assert am.silence(silence_id)["status"]["state"] == "expired"


def test_posted_alerts_are_read_back_with_their_fingerprint(am):
    am.alerts_post(
        [{"labels": {"alertname": "ClientProbe", "project": "client-test"}, "annotations": {"x": "1"}}]
    )
    [alert] = am.alerts(filters=['alertname="ClientProbe"'])
    assert len(alert["fingerprint"]) == 16 and alert["annotations"] == {"x": "1"}
    assert alert["status"]["state"] in ("active", "unprocessed")


def test_alertmanager_refusals_are_invalid_and_a_dead_port_is_unreachable(am):
    now = datetime.now(UTC)
    with pytest.raises(Invalid) as caught:
        am.silence_create(matchers=[], starts_at=now, ends_at=now, created_by="t", comment="c")
    assert caught.value.status in (400, 422) and "matchers" in caught.value.cause
    with pytest.raises(Invalid):
        am.silence_expire("not-a-uuid")
    with pytest.raises(ValueError):
        am.silence_create(
            matchers=[Matcher("a", "b")],
            starts_at=now.replace(tzinfo=None),
            ends_at=now,
            created_by="t",
            comment="c",
        )
    dead = AlertmanagerClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unreachable) as caught:
        dead.silences()
    assert caught.value.permanent is False
    assert dead.ready() is False and am.ready() is True
