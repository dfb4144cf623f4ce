"""Channel pages and API: who may manage which channels, validation with clear messages, write-only
secrets, audit, the delivery log, the configuration error shown on the channel page, and "send test
message" through the same path as alerts (a real Celery worker sending to the robot stand-in)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings
from django.utils import translation

from alerting.choices import DeliveryStatus
from alerting.models import Channel, Delivery
from alerting.services.channels import channel_credentials
from alerting.services.delivery import delivery_enqueue, delivery_send
from observability.models import AuditEvent
from opsportal.celery import app
from sandbox.procs import stop
from tests.alerting.channel_fixtures import *  # noqa: F403
from tests.alerting.channel_fixtures import DINGTALK_KEYWORD, DINGTALK_SECRET, DINGTALK_TOKEN
from tests.fixtures.ci import unavailable
from tests.fixtures.services import start_celery_worker
from tests.helpers.api import api_as
from tests.polling import until

API = "/api/projects/orders/channels/"


@pytest.fixture(autouse=True)
def _in_english():
    """Messages the services store are in the active language; a page test in Chinese must not leak."""
    with translation.override("en"):
        yield


def _robot_body(**extra) -> dict:
    return {
        "name": "orders-dingtalk",
        "kind": "dingtalk",
        "access_token": DINGTALK_TOKEN,
        "signing_secret": DINGTALK_SECRET,
        "keyword": DINGTALK_KEYWORD,
        **extra,
    }


@pytest.mark.django_db
def test_an_owner_adds_a_dingtalk_robot_whose_secrets_are_stored_encrypted_and_never_shown(people):
    response = api_as(people.owner).post(API, _robot_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "dingtalk" and body["project"] == "orders" and body["keyword"] == DINGTALK_KEYWORD
    assert body["has_secret"] is True and body["last_error"] == ""
    assert (
        DINGTALK_TOKEN not in response.content.decode() and DINGTALK_SECRET not in response.content.decode()
    )
    channel = Channel.objects.get(pk=body["id"])
    assert channel_credentials(channel) == {"access_token": DINGTALK_TOKEN, "signing_secret": DINGTALK_SECRET}
    event = AuditEvent.objects.get(verb="channel.create", target_id=str(channel.pk))
    assert event.actor == people.owner and event.project == people.project
    assert event.changes["stored_keys"] == "access_token, signing_secret"
    assert DINGTALK_TOKEN not in str(event.changes) and DINGTALK_SECRET not in str(event.changes)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "dingtalk", "access_token": ""}, "access_token", "Required."),
        ({"kind": "dingtalk", "access_token": "has spaces in it"}, "access_token", "letters, digits"),
        ({"kind": "wecom"}, "key", "Required."),
        (
            {"kind": "email", "recipients": ["ops@example.com", "not-an-address"]},
            "recipients",
            "not-an-address",
        ),
        ({"kind": "email", "recipients": []}, "recipients", "at least one"),
        (
            {"kind": "sms", "numbers": ["12345"], "sign_name": "运维", "template_code": "SMS_123456"},
            "numbers",
            "12345",
        ),
        (
            {"kind": "sms", "numbers": ["13800138000"], "sign_name": "运维", "template_code": "x"},
            "template_code",
            "SMS_",
        ),
        (
            {"kind": "sms", "numbers": ["13800138000"], "template_code": "SMS_123456"},
            "sign_name",
            "sign name",
        ),
        ({"kind": "pager"}, "kind", "pager"),
    ],
)
def test_invalid_channels_are_refused_with_a_message_on_the_field(people, body, field, message):
    response = api_as(people.owner).post(API, {"name": "bad", **body}, format="json")

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_a_name_is_unique_per_project_and_the_kind_cannot_change(people, dingtalk_channel):
    again = api_as(people.owner).post(API, _robot_body(), format="json")
    assert again.status_code == 400 and "already" in again.json()["errors"]["name"][0]
    changed = api_as(people.owner).patch(f"{API}{dingtalk_channel.pk}/", {"kind": "wecom"}, format="json")
    assert changed.status_code == 400 and "kind" in changed.json()["errors"]


@pytest.mark.django_db
def test_an_edit_with_blank_secrets_keeps_them_and_new_ones_replace_them(people, dingtalk_channel):
    Channel.objects.filter(pk=dingtalk_channel.pk).update(last_error="sign not match")
    url = f"{API}{dingtalk_channel.pk}/"
    kept = api_as(people.owner).patch(
        url, {"name": "robot", "access_token": "", "enabled": False}, format="json"
    )
    assert kept.status_code == 200, kept.content
    assert (kept.json()["name"], kept.json()["enabled"], kept.json()["last_error"]) == (
        "robot",
        False,
        "sign not match",
    )
    channel = Channel.objects.get(pk=dingtalk_channel.pk)
    assert channel_credentials(channel)["access_token"] == DINGTALK_TOKEN

    replaced = api_as(people.owner).patch(url, {"signing_secret": "SECnew0secret"}, format="json")
    assert replaced.status_code == 200
    channel.refresh_from_db()
    assert channel_credentials(channel) == {"access_token": DINGTALK_TOKEN, "signing_secret": "SECnew0secret"}
    assert channel.last_error == ""  # the error was about the old secret
    updates = AuditEvent.objects.filter(verb="channel.update", target_id=str(channel.pk)).order_by("pk")
    assert [e.changes.get("stored_keys") for e in updates] == [None, "changed: signing_secret"]
    assert updates[0].changes["enabled"] == [True, False]


@pytest.mark.django_db
def test_members_read_project_channels_owners_and_ops_manage_them(people, dingtalk_channel):
    url = f"{API}{dingtalk_channel.pk}/"
    assert api_as(people.viewer).get(API).json()["count"] == 1
    assert api_as(people.viewer).get(url).status_code == 200
    assert api_as(people.developer).patch(url, {"name": "x"}, format="json").status_code == 403
    assert api_as(people.developer).post(f"{url}test/").status_code == 403
    assert api_as(people.outsider).get(url).status_code == 404
    assert api_as(people.ops).patch(url, {"name": "ops-renamed"}, format="json").status_code == 200
    assert api_as(people.owner).delete(url).status_code == 204
    assert not Channel.objects.exists()
    assert AuditEvent.objects.filter(verb="channel.delete").count() == 1


@pytest.mark.django_db
def test_portal_wide_channels_are_ops_only(people, email_channel):
    assert (
        api_as(people.ops).get("/api/channels/").json()["results"][0]["recipients"]
        == email_channel.config["recipients"]
    )
    assert api_as(people.owner).get("/api/channels/").status_code == 404
    assert api_as(people.owner).get(f"/api/channels/{email_channel.pk}/").status_code == 404
    # A portal-wide channel is not reachable under a project, nor a project's under /api/channels/.
    assert api_as(people.ops).get(f"{API}{email_channel.pk}/").status_code == 404
    created = api_as(people.ops).post(
        "/api/channels/", {"name": "ops-wecom", "kind": "wecom", "key": "k-1"}, format="json"
    )
    assert created.status_code == 201 and created.json()["project"] is None


@pytest.mark.django_db
def test_a_test_message_is_queued_and_a_disabled_channel_refuses_one(people, wecom_channel):
    url = f"{API}{wecom_channel.pk}/test/"
    queued = api_as(people.owner).post(url)
    assert queued.status_code == 202, queued.content
    delivery = Delivery.objects.get(pk=queued.json()["id"])
    assert (delivery.cause, delivery.status, queued.json()["status"]) == ("test", "queued", "queued")
    assert delivery.link.endswith(f"/projects/orders/channels/{wecom_channel.pk}/")
    assert AuditEvent.objects.filter(verb="channel.test", target_id=str(wecom_channel.pk)).count() == 1

    Channel.objects.filter(pk=wecom_channel.pk).update(enabled=False)
    refused = api_as(people.owner).post(url)
    assert refused.status_code == 409 and "disabled" in refused.json()["detail"]


@pytest.mark.django_db
def test_a_wrong_secret_shows_as_a_configuration_error_on_the_channel_page_and_in_the_log(
    client, people, robots, dingtalk_channel
):
    robots.add_dingtalk_robot(DINGTALK_TOKEN, secret="SECanother", keywords=[DINGTALK_KEYWORD])
    delivery = delivery_enqueue(channel=dingtalk_channel, cause="test", title="t", text="x")
    delivery_send(delivery_id=delivery.pk)

    log = api_as(people.viewer).get(f"{API}{dingtalk_channel.pk}/deliveries/").json()["results"]
    assert [(d["status"], d["errcode"], d["attempts"]) for d in log] == [("failed", "310000", 1)]
    client.force_login(people.viewer)
    page = client.get(f"/projects/orders/channels/{dingtalk_channel.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="channel-error"' in html and "signing secret" in html
    assert 'data-status="failed"' in html and "310000" in html
    assert 'id="send-test"' not in html  # a viewer reads, does not send
    assert DINGTALK_TOKEN not in html and DINGTALK_SECRET not in html
    # The log refreshes itself (htmx): the partial is the log alone.
    partial = client.get(f"/projects/orders/channels/{dingtalk_channel.pk}/", HTTP_HX_REQUEST="true")
    fragment = partial.content.decode()
    assert fragment.lstrip().startswith('<div id="delivery-log"') and 'id="channel-error"' not in fragment
    assert 'data-status="failed"' in fragment


@pytest.mark.django_db
def test_pages_add_and_edit_a_channel_with_errors_on_the_fields(client, people):
    client.force_login(people.owner)
    refused = client.post(
        "/projects/orders/channels/new/",
        {"name": "mail", "kind": "email", "recipients": "a@example.com\nnope"},
    )
    assert refused.status_code == 400 and "Not an email address: nope" in refused.content.decode()

    added = client.post(
        "/projects/orders/channels/new/",
        {"name": "mail", "kind": "email", "recipients": "a@example.com\nb@example.com", "enabled": "on"},
    )
    channel = Channel.objects.get(name="mail")
    assert added.status_code == 302 and added["Location"] == f"/projects/orders/channels/{channel.pk}/"
    assert channel.config["recipients"] == ["a@example.com", "b@example.com"] and channel.enabled

    edit = f"/projects/orders/channels/{channel.pk}/edit/"
    assert client.get(edit).status_code == 200
    saved = client.post(edit, {"name": "mail", "recipients": "c@example.com"})
    assert saved.status_code == 302
    channel.refresh_from_db()
    assert channel.config["recipients"] == ["c@example.com"] and not channel.enabled
    listing = client.get("/projects/orders/channels/").content.decode()
    assert f'data-channel="{channel.pk}"' in listing

    client.force_login(people.developer)
    assert client.get("/projects/orders/channels/new/").status_code == 403


# --- through a real worker -------------------------------------------------------------------------


@pytest.fixture
def delivery_worker(settings, chatrobots_standin, tmp_path, monkeypatch):
    """A real worker (with beat: the sweeper) on a private queue, sending to the robot stand-in."""
    if not django_settings.REDIS_URL:
        unavailable("needs REDIS_URL (run through sandbox.testenv)")
    queue = f"{django_settings.CELERY_TASK_DEFAULT_QUEUE}-delivery-{os.getpid()}"
    monkeypatch.setitem(app.conf, "CELERY_TASK_DEFAULT_QUEUE", queue)
    settings.DINGTALK_WEBHOOK_BASE = settings.WECOM_WEBHOOK_BASE = chatrobots_standin.url
    env = {
        "DINGTALK_WEBHOOK_BASE": chatrobots_standin.url,
        "WECOM_WEBHOOK_BASE": chatrobots_standin.url,
        "ALERTING_RETRY_BACKOFF_SECONDS": "1",
        "ALERTING_SWEEP_SECONDS": "1",
    }
    pool = ("solo", "--beat", "--schedule", str(tmp_path / "beat"))
    proc = start_celery_worker(tmp_path / "worker.log", queue=queue, env=env, pool=pool)
    yield proc
    stop(proc)


@pytest.mark.django_db(transaction=True)
def test_the_test_button_sends_through_the_worker_and_a_5xx_is_retried(
    client, people, chatrobots_standin, delivery_worker
):
    chatrobots_standin.add_dingtalk_robot(DINGTALK_TOKEN, secret=DINGTALK_SECRET, keywords=[DINGTALK_KEYWORD])
    created = api_as(people.owner).post(API, _robot_body(), format="json")
    channel_id = created.json()["id"]
    chatrobots_standin.set_outage(True)

    client.force_login(people.owner)
    pressed = client.post(f"/projects/orders/channels/{channel_id}/test/")
    assert pressed.status_code == 302
    until(
        "the first attempt meets the outage", lambda: chatrobots_standin.attempts(DINGTALK_TOKEN), timeout=60
    )
    chatrobots_standin.set_outage(False)

    def sent():
        return Delivery.objects.filter(channel_id=channel_id, status=DeliveryStatus.SENT).first()

    delivery = until("the retry is sent", sent, timeout=60)
    assert delivery.cause == "test" and delivery.attempts >= 2
    [message] = chatrobots_standin.messages(DINGTALK_TOKEN)
    assert DINGTALK_KEYWORD in message.title and f"/projects/orders/channels/{channel_id}/" in message.content
    page = client.get(f"/projects/orders/channels/{channel_id}/").content.decode()
    assert f'data-delivery="{delivery.pk}" data-status="sent"' in page


@pytest.mark.django_db(transaction=True)
def test_25_alerts_in_a_minute_through_the_worker_arrive_within_minutes_and_the_log_shows_the_batch(
    client, people, chatrobots_standin, delivery_worker
):
    chatrobots_standin.add_dingtalk_robot(DINGTALK_TOKEN, secret=DINGTALK_SECRET, keywords=[DINGTALK_KEYWORD])
    channel_id = api_as(people.owner).post(API, _robot_body(), format="json").json()["id"]
    channel = Channel.objects.get(pk=channel_id)
    for n in range(1, 26):  # each in its own transaction, as 25 alert notifications would be
        delivery_enqueue(channel=channel, cause="alert-firing", title=f"TargetDown #{n}", text=f"(alert {n})")

    def all_delivered():
        delivered = "\n".join(m.content for m in chatrobots_standin.messages(DINGTALK_TOKEN))
        return all(f"(alert {n})" in delivered for n in range(1, 26))

    until("all 25 alerts reach the robot", all_delivered, timeout=180)
    messages = chatrobots_standin.messages(DINGTALK_TOKEN)
    times = sorted(m.time for m in messages)
    assert max(sum(1 for u in times[i:] if u - t < 60) for i, t in enumerate(times)) <= 20
    assert all(a.errcode == 0 for a in chatrobots_standin.attempts(DINGTALK_TOKEN))
    assert times[-1] - times[0] < 180
    log = Delivery.objects.filter(channel_id=channel_id)
    assert log.filter(status=DeliveryStatus.BATCHED).count() == 25 - len(messages) > 0
    assert not log.filter(status__in=[DeliveryStatus.QUEUED, DeliveryStatus.FAILED]).exists()

    client.force_login(people.viewer)
    page = client.get(f"/projects/orders/channels/{channel_id}/").content.decode()
    assert page.count('data-status="batched"') == 25 - len(messages)


@pytest.mark.django_db
def test_the_channel_pages_speak_chinese(client, people, dingtalk_channel):
    Channel.objects.filter(pk=dingtalk_channel.pk).update(last_error="DingTalk refused")
    client.force_login(people.owner)
    listing = client.get("/projects/orders/channels/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "告警通道" in listing and "配置错误" in listing and "钉钉机器人" in listing
    page = client.get(f"/projects/orders/channels/{dingtalk_channel.pk}/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "发送测试消息" in page.content.decode() and "发送记录" in page.content.decode()
    refused = client.post(
        "/projects/orders/channels/new/",
        {"name": "邮件", "kind": "email", "recipients": "nope"},
        HTTP_ACCEPT_LANGUAGE="zh-CN",
    )
    assert "不是有效的邮件地址：nope。" in refused.content.decode()
