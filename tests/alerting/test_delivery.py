"""Sending deliveries to the real stand-ins: a signed DingTalk message, WeCom, email over SMTP, SMS; the
per-robot rate limit with waiting and batching; permanent errors that fail once and show on the channel;
transient ones that are retried. The service is called as the task calls it; time-machine moves the
clock (the stand-ins read the same patched clock) to cross minute windows without waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone, translation

from alerting.choices import DeliveryStatus
from alerting.models import Alert, Channel, Delivery
from alerting.services.delivery import (
    deliveries_due,
    deliveries_recover_stuck,
    delivery_enqueue,
    delivery_send,
)
from observability.models import AuditEvent
from tests.alerting.channel_fixtures import *  # noqa: F403
from tests.alerting.channel_fixtures import (
    DINGTALK_KEYWORD,
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    MOBILE,
    RECIPIENTS,
    WECOM_KEY,
)
from tests.fixtures.alerting import SMS_SIGN_NAME

pytestmark = pytest.mark.django_db

LINK = "http://portal.example.com/projects/orders/alerts/"


@pytest.fixture(autouse=True)
def _in_english():
    """Messages the services store are in the active language; a page test in Chinese must not leak."""
    with translation.override("en"):
        yield


def _enqueue(channel, n: int = 1, **extra):
    return delivery_enqueue(
        channel=channel,
        cause="alert-firing",
        title=extra.pop("title", f"ErrorRatioHigh #{n}"),
        text=extra.pop("text", f"go-hello prod: 5xx ratio 31% > 5% (alert {n})"),
        link=LINK,
        **extra,
    )


def _send_due() -> int:
    due = deliveries_due()
    for delivery_id in due:
        delivery_send(delivery_id=delivery_id)
    return len(due)


def test_a_signed_dingtalk_message_arrives_with_the_keyword_link_and_mentions(robots, dingtalk_channel):
    delivery = _enqueue(dingtalk_channel, mentions={"mobiles": ["13900139000"], "user_ids": [], "all": False})
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.errcode) == (DeliveryStatus.SENT, 1, "")
    assert delivery.sent_at is not None
    [message] = robots.messages(DINGTALK_TOKEN)  # the stand-in verified the timestamp and sign
    assert message.msgtype == "markdown"
    assert DINGTALK_KEYWORD in message.title and "ErrorRatioHigh #1" in message.title
    assert "5xx ratio 31%" in message.content and LINK in message.content
    assert message.at["mobiles"] == ["13900139000"] and "@13900139000" in message.content


def test_a_text_that_carries_its_heading_and_link_gets_neither_twice(
    robots, dingtalk_channel, mail, email_channel
):
    title = "[Firing · Critical] orders · prod: Error ratio high"
    robot_text = f"### {title}\n- Error ratio 0.31, threshold 0.05\n[Open in OpsPortal]({LINK})"
    mail_text = f"{title}\n\nError ratio 0.31, threshold 0.05\n\n{LINK}"
    for channel, text in ((dingtalk_channel, robot_text), (email_channel, mail_text)):
        delivery_send(delivery_id=_enqueue(channel, title=title, text=text).pk)
    [message] = robots.messages(DINGTALK_TOKEN)
    assert message.content == robot_text
    [received] = mail.messages
    assert received.text.count(LINK) == 1 and received.text.count(title) == 1


def test_a_wecom_message_arrives(robots, wecom_channel):
    delivery = _enqueue(wecom_channel)
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    [message] = robots.messages(WECOM_KEY)
    assert message.msgtype == "markdown" and "5xx ratio 31%" in message.content and LINK in message.content


def test_an_email_arrives_through_django_smtp_backend(mail, email_channel):
    delivery = _enqueue(email_channel, title="订单服务告警 ErrorRatioHigh")
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    [received] = mail.messages
    assert sorted(received.rcpt_tos) == sorted(RECIPIENTS)
    assert received.subject == "订单服务告警 ErrorRatioHigh"
    assert "5xx ratio 31%" in received.text and LINK in received.text


def test_an_sms_arrives_with_the_template_variables(people, sms, sms_channel):
    alert = Alert.objects.create(
        fingerprint="f1",
        starts_at=timezone.now(),
        status="firing",
        alertname="ErrorRatioHigh",
        severity="critical",
        project=people.project,
        environment="prod",
        labels={"service": "go-hello", "env": "prod", "severity": "critical"},
    )
    delivery = _enqueue(sms_channel, alert=alert)
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT, delivery.error
    [message] = sms.messages_to(MOBILE)
    assert message.sign_name == SMS_SIGN_NAME
    assert message.params["service"] == "go-hello" and message.params["severity"] == "critical"
    assert message.params["link"] == LINK
    assert message.text.startswith(f"【{SMS_SIGN_NAME}】go-hello prod critical告警")


def test_25_alerts_in_a_minute_to_one_robot_all_arrive_and_none_over_20_a_minute(robots, dingtalk_channel):
    start = timezone.now()
    with time_machine.travel(start, tick=True) as clock:
        deliveries = [_enqueue(dingtalk_channel, n) for n in range(1, 26)]
        for delivery in deliveries:  # what the 25 queued task messages do, one after another
            delivery_send(delivery_id=delivery.pk)
        statuses = list(Delivery.objects.order_by("pk").values_list("status", flat=True))
        assert statuses == [DeliveryStatus.SENT] * 19 + [DeliveryStatus.QUEUED] * 6
        waiting = Delivery.objects.filter(status=DeliveryStatus.QUEUED)
        assert all(d.next_attempt_at > timezone.now() for d in waiting)
        assert _send_due() == 0  # nothing is due before a slot frees

        clock.shift(62)
        sent_now = _send_due()
        assert sent_now >= 1

        clock.shift(120)  # anything left (nothing should be) has long been due
        _send_due()

    messages = robots.messages(DINGTALK_TOKEN)
    assert len(messages) == 20  # 19 single messages and one batch of 6
    delivered = "\n".join(m.content for m in messages)
    for n in range(1, 26):
        assert f"(alert {n})" in delivered, f"alert {n} was lost"
    times = sorted(m.time for m in messages)
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 60) <= 20, "more than 20 messages in one minute"
    assert all(a.errcode == 0 for a in robots.attempts(DINGTALK_TOKEN)), "the robot had to refuse something"

    log = Delivery.objects.filter(channel=dingtalk_channel)
    assert log.filter(status=DeliveryStatus.SENT).count() == 20
    batched = log.filter(status=DeliveryStatus.BATCHED)
    assert batched.count() == 5
    leader = log.get(pk=batched.first().batch_id)
    assert leader.status == DeliveryStatus.SENT and leader.merged.count() == 5
    assert all(d.sent_at == leader.sent_at for d in batched)
    assert leader.sent_at - leader.created_at < timedelta(minutes=3)
    assert "(+5)" in [m for m in messages if "(alert 25)" in m.content][0].title


def test_a_wrong_dingtalk_secret_fails_once_and_shows_on_the_channel(people, robots, dingtalk_channel):
    robots.add_dingtalk_robot(
        DINGTALK_TOKEN, secret="SECthe-robot-has-another-secret", keywords=[DINGTALK_KEYWORD]
    )
    delivery = _enqueue(dingtalk_channel)
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode, delivery.attempts) == (DeliveryStatus.FAILED, "310000", 1)
    channel = Channel.objects.get(pk=dingtalk_channel.pk)
    assert "signing secret" in channel.last_error and channel.last_error_at is not None
    assert AuditEvent.objects.filter(verb="channel.error", target_id=str(channel.pk)).count() == 1

    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=True):
        assert _send_due() == 0
        delivery_send(delivery_id=delivery.pk)  # a duplicate message: nothing to do
        deliveries_recover_stuck()
    assert [a.errcode for a in robots.attempts(DINGTALK_TOKEN)] == [310000]  # no retry storm
    assert robots.messages() == []


def test_a_wrong_wecom_key_is_permanent(people, robots):
    from alerting.services.channels import channel_create

    channel = channel_create(
        actor=people.owner, project=people.project, name="stale", kind="wecom", key="removed-key"
    )
    delivery = _enqueue(channel)
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode) == (DeliveryStatus.FAILED, "93000")
    assert "key" in Channel.objects.get(pk=channel.pk).last_error
    assert len(robots.attempts("removed-key")) == 1


def test_a_5xx_is_retried_later_and_a_success_clears_the_channel_error(robots, dingtalk_channel, settings):
    settings.ALERTING_RETRY_BACKOFF_SECONDS = 10
    Channel.objects.filter(pk=dingtalk_channel.pk).update(
        last_error="old trouble", last_error_at=timezone.now()
    )
    robots.set_outage(True)
    delivery = _enqueue(dingtalk_channel)
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode, delivery.attempts) == (DeliveryStatus.QUEUED, "HTTP 500", 1)
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=8)
    assert _send_due() == 0

    robots.set_outage(False)
    with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1), tick=True):
        assert _send_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert len(robots.messages(DINGTALK_TOKEN)) == 1
    assert Channel.objects.get(pk=dingtalk_channel.pk).last_error == ""


def test_a_robot_rate_limit_errcode_waits_a_minute_and_goes_out_batched(robots, wecom_channel):
    robots.inject_errcode(WECOM_KEY, 45009, "api freq out of limit")
    first = _enqueue(wecom_channel, 1)
    delivery_send(delivery_id=first.pk)
    first.refresh_from_db()
    assert (first.status, first.errcode) == (DeliveryStatus.QUEUED, "45009")
    assert first.next_attempt_at >= timezone.now() + timedelta(seconds=55)

    second = _enqueue(wecom_channel, 2)
    delivery_send(delivery_id=second.pk)  # a free slot: it carries the waiting one along

    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == DeliveryStatus.SENT
    assert (first.status, first.batch_id, first.sent_at) == (
        DeliveryStatus.BATCHED,
        second.pk,
        second.sent_at,
    )
    [message] = robots.messages(WECOM_KEY)
    assert "(alert 1)" in message.content and "(alert 2)" in message.content


def test_transient_failures_end_failed_after_the_last_attempt(robots, dingtalk_channel, settings):
    settings.ALERTING_MAX_ATTEMPTS = 2
    robots.inject_errcode(DINGTALK_TOKEN, 90030, "webhook over limit")
    delivery = _enqueue(dingtalk_channel)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    # The quota errcode asks for an hour; the wait is capped so the message is not parked for long.
    assert (delivery.status, delivery.errcode) == (DeliveryStatus.QUEUED, "90030")
    assert delivery.next_attempt_at <= timezone.now() + timedelta(
        seconds=settings.ALERTING_MAX_BACKOFF_SECONDS
    )

    robots.set_outage(True, status=502)
    with time_machine.travel(timezone.now() + timedelta(minutes=11), tick=True):
        assert _send_due() == 1
        assert _send_due() == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode, delivery.attempts) == (DeliveryStatus.FAILED, "HTTP 502", 2)
    assert "Gave up after 2 attempts" in Channel.objects.get(pk=dingtalk_channel.pk).last_error
    assert len(robots.attempts(DINGTALK_TOKEN)) == 2


def test_smtp_refusals_are_classified(mail, email_channel):
    mail.set_fault(451)
    temporary = _enqueue(email_channel, 1)
    delivery_send(delivery_id=temporary.pk)
    temporary.refresh_from_db()
    assert (temporary.status, temporary.errcode) == (DeliveryStatus.QUEUED, "451")

    mail.set_fault(550, stage="rcpt")
    permanent = _enqueue(email_channel, 2)
    delivery_send(delivery_id=permanent.pk)
    permanent.refresh_from_db()
    assert (permanent.status, permanent.errcode) == (DeliveryStatus.FAILED, "550")
    assert mail.messages == []


def test_sms_refusals_are_classified(people, sms, sms_channel):
    first = _enqueue(sms_channel, 1)
    delivery_send(delivery_id=first.pk)
    throttled = _enqueue(sms_channel, 2)  # the same number within a minute: the service's flow control
    delivery_send(delivery_id=throttled.pk)
    throttled.refresh_from_db()
    assert (throttled.status, throttled.errcode) == (DeliveryStatus.QUEUED, "isv.BUSINESS_LIMIT_CONTROL")
    assert throttled.next_attempt_at >= timezone.now() + timedelta(seconds=55)

    Channel.objects.filter(pk=sms_channel.pk).update(
        config={**sms_channel.config, "template_code": "SMS_1000"}
    )
    refused = _enqueue(sms_channel, 3)
    delivery_send(delivery_id=refused.pk)
    refused.refresh_from_db()
    assert (refused.status, refused.errcode) == (DeliveryStatus.FAILED, "isv.SMS_TEMPLATE_ILLEGAL")
    assert "template code" in Channel.objects.get(pk=sms_channel.pk).last_error


def test_a_delivery_left_sending_by_a_lost_worker_is_sent_again(robots, wecom_channel, settings):
    delivery = _enqueue(wecom_channel)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, attempts=1, attempted_at=timezone.now() - timedelta(minutes=5)
    )
    assert deliveries_recover_stuck() == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode) == (DeliveryStatus.QUEUED, "worker-lost")
    with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1), tick=True):
        assert _send_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


def test_a_duplicate_task_message_sends_once(robots, wecom_channel):
    delivery = _enqueue(wecom_channel)
    delivery_send(delivery_id=delivery.pk)
    delivery_send(delivery_id=delivery.pk)
    assert len(robots.messages(WECOM_KEY)) == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1


def test_a_disabled_channel_fails_its_deliveries_visibly(robots, wecom_channel):
    delivery = _enqueue(wecom_channel)
    Channel.objects.filter(pk=wecom_channel.pk).update(enabled=False)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode) == (DeliveryStatus.FAILED, "disabled")
    assert robots.attempts() == []


def test_an_unreachable_robot_is_transient_and_its_error_never_names_the_credential(
    settings, caplog, dingtalk_channel
):
    settings.DINGTALK_WEBHOOK_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port
    caplog.set_level("DEBUG")
    delivery = _enqueue(dingtalk_channel)
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.errcode) == (DeliveryStatus.QUEUED, "Unreachable")
    logged = " ".join(r.getMessage() + str(r.args) for r in caplog.records)
    for place in (delivery.error, logged):
        assert DINGTALK_TOKEN not in place and DINGTALK_SECRET not in place


def test_a_batch_never_outgrows_the_robot_and_the_rest_goes_in_the_next_slot(robots, wecom_channel):
    long_text = "pods go-hello-7d9c restarted; " * 12  # ~360 bytes: a few fit in one WeCom message
    with time_machine.travel(timezone.now(), tick=True) as clock:
        for n in range(1, 26):
            delivery_send(delivery_id=_enqueue(wecom_channel, n, text=f"{long_text}(alert {n})").pk)
        clock.shift(62)
        _send_due()
        clock.shift(120)
        _send_due()

    messages = robots.messages(WECOM_KEY)
    assert 20 < len(messages) < 25  # the six waiting ones did not fit in one message
    assert all(len(m.content.encode()) <= 4096 and "…" not in m.content for m in messages)
    delivered = "\n".join(m.content for m in messages)
    assert all(f"(alert {n})" in delivered for n in range(1, 26))
    assert not Delivery.objects.filter(status__in=[DeliveryStatus.QUEUED, DeliveryStatus.FAILED]).exists()


def test_the_sweeper_picks_up_a_delivery_whose_message_was_lost(robots, wecom_channel):
    delivery = _enqueue(wecom_channel)  # its task message never runs (as after a broker restart)
    assert deliveries_due() == []  # young: its message may still be on its way
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=True):
        assert _send_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert len(robots.messages(WECOM_KEY)) == 1


def test_channels_that_share_one_robot_share_its_rate_limit(people, robots, dingtalk_channel):
    from alerting.services.channels import channel_create

    ops_channel = channel_create(
        actor=people.ops,
        project=None,
        name="ops-same-group",
        kind="dingtalk",
        access_token=DINGTALK_TOKEN,
        signing_secret=DINGTALK_SECRET,
        keyword=DINGTALK_KEYWORD,
    )
    assert ops_channel.robot == Channel.objects.get(pk=dingtalk_channel.pk).robot != ""
    assert DINGTALK_TOKEN not in ops_channel.robot
    with time_machine.travel(timezone.now(), tick=True) as clock:
        for n in range(1, 26):
            channel = dingtalk_channel if n % 2 else ops_channel
            delivery_send(delivery_id=_enqueue(channel, n).pk)
        assert len(robots.messages(DINGTALK_TOKEN)) == 19
        clock.shift(62)
        _send_due()
        clock.shift(120)
        _send_due()

    delivered = "\n".join(m.content for m in robots.messages(DINGTALK_TOKEN))
    assert all(f"(alert {n})" in delivered for n in range(1, 26))
    assert all(a.errcode == 0 for a in robots.attempts(DINGTALK_TOKEN))
    # Each channel's waiting alerts went out in that channel's own batch.
    batches = Delivery.objects.filter(merged__isnull=False).distinct()
    assert {b.channel_id for b in batches} == {dingtalk_channel.pk, ops_channel.pk}


def test_messages_held_for_quiet_hours_go_out_together_when_they_end(robots, dingtalk_channel):
    start = timezone.now()
    with time_machine.travel(start, tick=True) as clock:
        held = [_enqueue(dingtalk_channel, n, not_before=start + timedelta(hours=2)) for n in (1, 2)]
        for delivery in held:  # the messages queued with their countdown, delivered early: nothing yet
            delivery_send(delivery_id=delivery.pk)
        assert _send_due() == 0 and robots.messages(DINGTALK_TOKEN) == []
        clock.shift(2 * 3600 + 1)
        _send_due()
    [message] = robots.messages(DINGTALK_TOKEN)
    assert "(alert 1)" in message.content and "(alert 2)" in message.content
    statuses = sorted(Delivery.objects.filter(pk__in=[d.pk for d in held]).values_list("status", flat=True))
    assert statuses == [DeliveryStatus.BATCHED, DeliveryStatus.SENT]
