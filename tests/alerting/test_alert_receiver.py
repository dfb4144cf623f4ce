"""The webhook receiver, POST /api/alerts/alertmanager, in-process: credentials, dedupe on (fingerprint,
startsAt), the firing → resolved history and the alert_transitioned signal (once per change, on commit).
The same path from a real Alertmanager is in test_alertmanager_live.py."""

import base64
import json

import pytest

from alerting.models import Alert, AlertTransition
from alerting.signals import alert_transitioned
from tests.alerting.payloads import notification

URL = "/api/alerts/alertmanager"
TOKEN = "receiver-token-for-tests-0123456789"


@pytest.fixture
def webhook(settings):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = TOKEN
    settings.ALERTMANAGER_WEBHOOK_USER = ""
    settings.ALERTMANAGER_WEBHOOK_PASSWORD = ""
    return settings


@pytest.fixture
def sent():
    """The (alert_id, transition) pairs alert_transitioned sent."""
    calls: list[tuple[int, str]] = []

    def record(sender, alert_id, transition, **kwargs):
        calls.append((alert_id, transition))

    alert_transitioned.connect(record, weak=False, dispatch_uid="test-recorder")
    yield calls
    alert_transitioned.disconnect(dispatch_uid="test-recorder")


def post(client, payload, *, auth=f"Bearer {TOKEN}", content_type="application/json"):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(URL, body, content_type=content_type, **headers)


@pytest.mark.django_db
def test_a_firing_notification_is_stored_with_its_project_and_sends_one_signal(
    client, people, webhook, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, notification(project="orders"))
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 1, "created": 1, "changed": 1}
    alert = Alert.objects.get()
    assert (alert.fingerprint, alert.status, alert.alertname) == (
        "4d9e5bdac7ef73a4",
        "firing",
        "HighErrorRatio",
    )
    assert alert.project == people.project and alert.environment == "test" and alert.severity == "critical"
    assert alert.ends_at is None
    assert alert.annotations["summary"].startswith("5xx ratio")
    assert list(alert.transitions.values_list("status", flat=True)) == ["firing"]
    assert len(callbacks) == 1  # sent on commit, not before
    assert sent == [(alert.pk, "firing")]


@pytest.mark.django_db
def test_the_same_notification_twice_is_one_row_and_one_signal(
    client, people, webhook, sent, django_capture_on_commit_callbacks
):
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, notification(project="orders")).status_code == 200
    assert Alert.objects.count() == 1
    assert AlertTransition.objects.count() == 1
    assert len(sent) == 1


@pytest.mark.django_db
def test_resolving_keeps_the_history_and_signals_once(
    client, people, webhook, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, notification(project="orders"))
        post(client, notification(project="orders", resolved=True))
        post(client, notification(project="orders", resolved=True))  # a repeat of the resolved post
        post(client, notification(project="orders"))  # a late retry of the firing post: no reopening
    alert = Alert.objects.get()
    assert alert.status == "resolved"
    assert alert.ends_at.isoformat() == "2026-11-30T02:59:31.182000+00:00"
    assert list(alert.transitions.values_list("status", flat=True)) == ["firing", "resolved"]
    assert sent == [(alert.pk, "firing"), (alert.pk, "resolved")]


@pytest.mark.django_db
def test_a_new_starts_at_is_a_new_occurrence(
    client, people, webhook, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, notification(project="orders"))
        post(client, notification(project="orders", resolved=True))
        post(client, notification(project="orders", startsAt="2026-11-30T03:30:00Z"))
    assert Alert.objects.filter(fingerprint="4d9e5bdac7ef73a4").count() == 2
    assert [t for _, t in sent] == ["firing", "resolved", "firing"]


@pytest.mark.django_db
def test_an_unknown_project_is_kept_as_a_portal_wide_alert(
    client, db, webhook, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, notification(project="no-such-project")).status_code == 200
    alert = Alert.objects.get()
    assert alert.project is None and alert.labels["project"] == "no-such-project"
    assert len(sent) == 1


@pytest.mark.django_db
def test_first_heard_resolved_records_the_history_and_tells_nobody(
    client, people, webhook, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, notification(project="orders", resolved=True))
    alert = Alert.objects.get()
    assert alert.status == "resolved"
    assert list(alert.transitions.values_list("status", flat=True)) == ["firing", "resolved"]
    assert sent == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "auth",
    [
        "",
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Token {TOKEN}",
        "Basic " + base64.b64encode(b"a:b").decode(),
    ],
)
def test_a_wrong_or_missing_credential_is_refused(client, webhook, auth):
    response = post(client, notification(), auth=auth)
    assert response.status_code == 403
    assert set(response.json()) == {"detail", "errors"}
    assert Alert.objects.count() == 0


@pytest.mark.django_db
def test_a_session_is_no_credential(client, people, webhook):
    client.force_login(people.ops)
    assert post(client, notification(), auth="").status_code == 403


@pytest.mark.django_db
def test_nothing_configured_closes_the_receiver(client, settings):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = ""
    settings.ALERTMANAGER_WEBHOOK_USER = settings.ALERTMANAGER_WEBHOOK_PASSWORD = ""
    assert post(client, notification(), auth="Bearer ").status_code == 403


@pytest.mark.django_db
def test_basic_auth_from_settings_is_accepted(client, people, settings):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = ""
    settings.ALERTMANAGER_WEBHOOK_USER = "alertmanager"
    settings.ALERTMANAGER_WEBHOOK_PASSWORD = "s3cret:with-colon"
    good = "Basic " + base64.b64encode(b"alertmanager:s3cret:with-colon").decode()
    bad = "Basic " + base64.b64encode(b"alertmanager:s3cret").decode()
    assert post(client, notification(project="orders"), auth=bad).status_code == 403
    assert post(client, notification(project="orders"), auth="Basic !!notbase64").status_code == 403
    assert post(client, notification(project="orders"), auth=good).status_code == 200
    assert Alert.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        ("{not json", "application/json", None),
        ("", "application/json", "non_field_errors"),
        (
            json.dumps({"version": "4", "alerts": [{"status": "firing"}]}),
            "application/json",
            "alerts[0].fingerprint",
        ),
        (json.dumps(notification(fingerprint="zz")), "text/plain", "alerts[0].fingerprint"),
        (json.dumps({**notification(), "version": "2"}), "application/json", "version"),
    ],
)
def test_a_malformed_payload_is_a_400_in_the_one_error_shape(client, webhook, body, content_type, field):
    response = post(client, body, content_type=content_type)
    assert response.status_code == 400, response.content
    error = response.json()
    assert set(error) == {"detail", "errors"} and error["detail"]
    if field:
        assert field in error["errors"]
    assert Alert.objects.count() == 0


@pytest.mark.django_db
def test_only_post_is_answered(client, webhook):
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


@pytest.mark.django_db
def test_the_same_notification_twice_is_one_message_per_channel_through_routing(
    client, people, webhook, django_capture_on_commit_callbacks
):
    """The receiver's signal reaches the routing (alerting.receivers): a policy for test × critical with
    two channels gets one firing message each however often the notification comes, then one resolved."""
    from alerting.models import Channel, Delivery, Policy

    policy = Policy.objects.create(project=people.project, environment="test", severity="critical")
    channels = [
        Channel.objects.create(project=people.project, name="robot", kind="dingtalk"),
        Channel.objects.create(project=people.project, name="mail", kind="email"),
    ]
    policy.channels.set(channels)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            assert post(client, notification(project="orders")).status_code == 200
    assert sorted(Delivery.objects.values_list("channel__name", "cause")) == [
        ("mail", "alert-firing"),
        ("robot", "alert-firing"),
    ]
    assert all(d.link.endswith("/projects/orders/alerts/") for d in Delivery.objects.all())
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            assert post(client, notification(project="orders", resolved=True)).status_code == 200
    assert Delivery.objects.filter(cause="alert-resolved").count() == 2
    assert Delivery.objects.count() == 4
