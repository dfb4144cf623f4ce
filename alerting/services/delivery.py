"""Sending messages to channels: one Delivery row per message and channel, sent by a task.

``delivery_enqueue`` records the row (queued) and queues ``alerting.tasks.send_delivery`` on commit.
``delivery_send`` is that task's work, one attempt:

1. Under the channel's row lock (senders of one channel take turns): a robot channel that already took
   ALERTING_ROBOT_PER_MINUTE messages in the last minute makes the delivery wait for the next free slot
   (``next_attempt_at``, and a message queued for then). Robots take 20 a minute; the margin keeps a
   message that reaches the robot a little after it was counted inside the limit.
2. When the slot is free, the other deliveries of the channel that are waiting (a slot, or a retry) are
   merged into this one: they become ``batched`` with ``batch`` pointing at it, and one message carries
   them all. So a burst of alerts is delivered within minutes, one message per free slot, none lost and
   none over the limit.
3. The claim is a conditional UPDATE (queued → sending, attempts + 1): a duplicate or late message finds
   nothing to do. The request itself runs outside any transaction.
4. The outcome: sent (the batched ones with it); a transient error (5xx, timeouts, DingTalk 130101 /
   WeCom 45009 rate limits, 90030 quota, SMS throttling, SMTP 4xx) goes back to queued with a backoff and
   is merged with whatever waits when it is tried again; a permanent one (DingTalk 310000 sign / keyword /
   IP, WeCom 93000 key, SMS sign name or template, SMTP 5xx) fails the delivery with its errcode at once
   and sets the channel's ``last_error``, which the channel page shows as a configuration error. Retries
   end after ALERTING_MAX_ATTEMPTS, failed and shown the same way: nothing is dropped silently.

``deliveries_sweep`` (beat, every ALERTING_SWEEP_SECONDS) queues due deliveries whose message was lost
and gives a delivery left sending by a lost worker back to the retry path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from alerting.choices import ChannelKind, DeliveryStatus
from alerting.models import Alert, Channel, Delivery
from alerting.services.channels import channel_credentials
from alerting.tasks import send_delivery
from integrations.errors import IntegrationError, Invalid
from observability.services import audit_record
from opsportal import metrics, runs

logger = logging.getLogger(__name__)

ROBOTS = frozenset({ChannelKind.DINGTALK, ChannelKind.WECOM})
RATE_WINDOW = timedelta(seconds=60)
# A message is counted when it is claimed and reaches the robot a moment later: wait this much longer.
RATE_SLACK = timedelta(seconds=1)
# A countdown message may fire a hair before next_attempt_at by the database's clock.
DUE_TOLERANCE = timedelta(seconds=1)
BATCH_MAX_ITEMS = 30
# What a batch may grow to (UTF-8 bytes), with room for the title and mentions: DingTalk takes about 20000;
# WeCom 4096 for markdown but 2048 for the text message used when a mobile number is @-mentioned.
MESSAGE_MAX_BYTES = {ChannelKind.DINGTALK: 18000, ChannelKind.WECOM: 1900}
WECOM_MARKDOWN_MAX = 4000
WECOM_TEXT_MAX = 2000
ERROR_LIMIT = 2000
SMS_PARAM_MAX = 35  # Alibaba Cloud SMS limits a template variable's length
# A queued delivery whose message never arrived (a broker restart) is sent by the sweeper after this.
LOST_MESSAGE_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 500


def delivery_enqueue(
    *,
    channel: Channel,
    cause: str,
    title: str,
    text: str,
    link: str = "",
    mentions: dict | None = None,
    alert: Alert | None = None,
    not_before: datetime | None = None,
) -> Delivery:
    """Record one message for one channel; it is sent after the caller's transaction commits, or at
    ``not_before`` (quiet hours), together with whatever else waits for the robot then.

    ``text`` is Markdown for robots (plain text reads fine in email); the title is its heading and the
    subject of an email, ``link`` is appended. ``mentions``: ``{"mobiles": [...], "user_ids": [...],
    "all": bool}`` for the robots' @-mentions, ``{"emails": [...]}`` for extra email recipients. An SMS
    channel sends its approved template filled from the alert (service, env, severity), the title
    (summary) and the link."""
    delivery = Delivery.objects.create(
        channel=channel,
        cause=cause[:40],
        title=title[:200],
        text=text,
        link=link,
        mentions=mentions or {},
        alert=alert,
        next_attempt_at=not_before,
    )
    countdown = max((not_before - timezone.now()).total_seconds(), 0) if not_before else None
    runs.queue(send_delivery, countdown=countdown, delivery_id=delivery.pk)
    return delivery


# --- one attempt ---------------------------------------------------------------------------------------


def _locked_channel(channel_id: int) -> Channel | None:
    """The channel row, locked. None once it was removed."""
    return (
        Channel.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(pk=channel_id)
        .first()
    )


def _lock_robot(channel_id: int) -> Channel | None:
    """The channel, locked together with every channel that uses the same robot (in id order, so two
    senders never wait for each other): the senders of one robot take turns. None once it was removed."""
    robot = Channel.objects.filter(pk=channel_id).values_list("robot", flat=True).first()
    if robot is None:
        return None
    sharing = Q(pk=channel_id) | Q(robot=robot) if robot else Q(pk=channel_id)
    locked = Channel.objects.select_for_update(of=("self",)).select_related("project").filter(sharing)
    return next((c for c in locked.order_by("pk") if c.pk == channel_id), None)


def _due(delivery: Delivery, now: datetime) -> bool:
    return (
        delivery.status == DeliveryStatus.QUEUED
        and delivery.batch_id is None
        and (delivery.next_attempt_at is None or delivery.next_attempt_at <= now + DUE_TOLERANCE)
    )


def _free_slot_at(channel: Channel, now: datetime) -> datetime | None:
    """None when the robot may take a message now; else when the next slot frees. Every channel that uses
    the robot counts."""
    limit = max(1, settings.ALERTING_ROBOT_PER_MINUTE)
    same_robot = Q(channel__robot=channel.robot) if channel.robot else Q(channel=channel)
    recent = list(
        Delivery.objects.filter(
            same_robot,
            status__in=(DeliveryStatus.SENDING, DeliveryStatus.SENT),
            attempted_at__gt=now - RATE_WINDOW - RATE_SLACK,
        )
        .order_by("attempted_at")
        .values_list("attempted_at", flat=True)
    )
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + RATE_WINDOW + RATE_SLACK


def _merge_waiting(channel: Channel, leader: Delivery) -> None:
    """Fold the channel's other waiting deliveries into ``leader`` while the message stays within the
    robot's size limit."""
    items = list(leader.merged.filter(status=DeliveryStatus.BATCHED).order_by("created_at", "pk"))
    waiting = list(
        Delivery.objects.filter(
            channel=channel,
            status=DeliveryStatus.QUEUED,
            batch__isnull=True,
            next_attempt_at__isnull=False,
        )
        .exclude(pk=leader.pk)
        .order_by("created_at", "pk")[: BATCH_MAX_ITEMS - 1 - len(items)]
    )
    taken = []
    for candidate in waiting:
        # A waiting delivery may itself lead a batch (its send failed transiently): take its items too.
        followers = list(candidate.merged.filter(status=DeliveryStatus.BATCHED))
        trial = [leader, *items, *taken, candidate, *followers]
        if (
            len(trial) > BATCH_MAX_ITEMS
            or _size(channel, compose(channel, trial)) > MESSAGE_MAX_BYTES[channel.kind]
        ):
            break
        taken += [candidate, *followers]
    if taken:
        Delivery.objects.filter(pk__in=[d.pk for d in taken]).update(
            status=DeliveryStatus.BATCHED, batch=leader, next_attempt_at=None
        )


def delivery_send(*, delivery_id: int) -> None:
    """One attempt at one delivery (and the ones merged into it); see the module docstring."""
    channel_id = Delivery.objects.filter(pk=delivery_id).values_list("channel_id", flat=True).first()
    if channel_id is None:
        return
    now = timezone.now()
    with transaction.atomic():
        channel = _lock_robot(channel_id)
        delivery = Delivery.objects.filter(pk=delivery_id).first()
        if channel is None or delivery is None or not _due(delivery, now):
            return  # sent, merged, failed, or a later attempt is planned: a duplicate or early message
        if not channel.enabled:
            Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
                status=DeliveryStatus.FAILED, errcode="disabled", error=_("The channel is disabled.")
            )
            return
        if channel.kind in ROBOTS:
            free_at = _free_slot_at(channel, now)
            if free_at is not None:
                Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
                    next_attempt_at=free_at
                )
                runs.queue(send_delivery, countdown=(free_at - now).total_seconds(), delivery_id=delivery_id)
                return
            _merge_waiting(channel, delivery)
        claimed = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, attempted_at=now, next_attempt_at=None
        )
        if not claimed:
            return
        items = [
            delivery,
            *delivery.merged.filter(status=DeliveryStatus.BATCHED).order_by("created_at", "pk"),
        ]
    try:
        _deliver(channel, items)
    except IntegrationError as exc:
        metrics.integration_error_record(exc)
        delivery_record_failure(delivery_id=delivery_id, error=exc)
        return
    except Exception as exc:
        # A bug must not leave the delivery "sending" until the sweeper: fail it visibly, let Celery log it.
        delivery_record_failure(
            delivery_id=delivery_id,
            error=IntegrationError(
                _("Internal error (%(kind)s): %(e)s. Tell the ops team.")
                % {"kind": exc.__class__.__name__, "e": exc},
                details={"errcode": "internal"},
            ),
        )
        raise
    _record_sent(delivery_id)


def _record_sent(delivery_id: int) -> None:
    now = timezone.now()
    with transaction.atomic():
        channel_id = Delivery.objects.filter(pk=delivery_id).values_list("channel_id", flat=True).first()
        if channel_id is None:
            return
        channel = _locked_channel(channel_id)
        if channel is None:
            return  # removed while sending: its log went with it
        done = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.SENT, sent_at=now, errcode="", error=""
        )
        if done:
            Delivery.objects.filter(batch_id=delivery_id, status=DeliveryStatus.BATCHED).update(sent_at=now)
        if channel.last_error:
            audit_record(
                actor=None,
                verb="channel.error.clear",
                target=channel,
                project=channel.project,
                changes={"last_error": [channel.last_error, ""]},
            )
            channel.last_error, channel.last_error_at = "", None
            channel.save(update_fields=["last_error", "last_error_at", "updated_at"])


def errcode_of(error: IntegrationError) -> str:
    """What the delivery log shows as the error code: the service's errcode or Code, the SMTP reply code,
    the HTTP status, or the kind of failure."""
    details = error.details or {}
    for key in ("errcode", "Code", "smtp_code"):
        if details.get(key) not in (None, ""):
            return str(details[key])[:40]
    if error.status and error.status != 200:
        return f"HTTP {error.status}"
    return error.__class__.__name__[:40]


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after ``attempts`` attempts: exponential backoff, or what the other
    side asked for when longer, at most ALERTING_MAX_BACKOFF_SECONDS."""
    backoff = settings.ALERTING_RETRY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)
    if retry_after:
        backoff = max(backoff, retry_after)
    return float(min(backoff, settings.ALERTING_MAX_BACKOFF_SECONDS))


def delivery_record_failure(*, delivery_id: int, error: IntegrationError) -> None:
    """End an attempt that failed: retry later (transient, attempts left) or fail (permanent, or retries
    used up), with the batched deliveries, and show the channel's error."""
    now = timezone.now()
    errcode = errcode_of(error)
    message = str(error)[:ERROR_LIMIT]
    with transaction.atomic():
        channel_id = Delivery.objects.filter(pk=delivery_id).values_list("channel_id", flat=True).first()
        if channel_id is None:
            return
        channel = _locked_channel(channel_id)
        delivery = Delivery.objects.filter(pk=delivery_id).first()
        if channel is None or delivery is None or delivery.status != DeliveryStatus.SENDING:
            return
        if not error.permanent and delivery.attempts < settings.ALERTING_MAX_ATTEMPTS:
            delay = retry_delay(delivery.attempts, error.retry_after)
            Delivery.objects.filter(pk=delivery_id).update(
                status=DeliveryStatus.QUEUED,
                errcode=errcode,
                error=message,
                next_attempt_at=now + timedelta(seconds=delay),
            )
            runs.queue(send_delivery, countdown=delay, delivery_id=delivery_id)
            return
        if not error.permanent:
            message = _("Gave up after %(n)d attempts: %(e)s") % {"n": delivery.attempts, "e": message}
        logger.warning("delivery %s to channel %s failed (%s): %s", delivery_id, channel.pk, errcode, message)
        Delivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.FAILED, errcode=errcode, error=message
        )
        Delivery.objects.filter(batch_id=delivery_id, status=DeliveryStatus.BATCHED).update(
            status=DeliveryStatus.FAILED, errcode=errcode, error=message
        )
        if channel.last_error != message:
            audit_record(
                actor=None,
                verb="channel.error",
                target=channel,
                project=channel.project,
                changes={"last_error": [channel.last_error, message], "errcode": errcode},
            )
        channel.last_error, channel.last_error_at = message, now
        channel.save(update_fields=["last_error", "last_error_at", "updated_at"])


# --- the sweeper ---------------------------------------------------------------------------------------


def deliveries_recover_stuck(*, now: datetime | None = None) -> list[int]:
    """Deliveries left sending longer than ALERTING_SENDING_STALE_SECONDS lost their worker: they take the
    transient-failure path (retried, or failed when their attempts are used up)."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ALERTING_SENDING_STALE_SECONDS)
    stuck = list(
        Delivery.objects.filter(status=DeliveryStatus.SENDING, attempted_at__lt=stale_before).values_list(
            "pk", flat=True
        )[:SWEEP_BATCH]
    )
    for delivery_id in stuck:
        delivery_record_failure(
            delivery_id=delivery_id,
            error=IntegrationError(
                _("The worker sending it stopped before it finished."),
                permanent=False,
                details={"errcode": "worker-lost"},
            ),
        )
    return stuck


def deliveries_due(*, now: datetime | None = None) -> list[int]:
    """Queued deliveries that should be tried now: due retries and waits, and fresh ones whose message
    seems lost. Oldest first."""
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status=DeliveryStatus.QUEUED, batch__isnull=True)
        .filter(
            Q(next_attempt_at__lte=now)
            | Q(next_attempt_at__isnull=True, created_at__lt=now - LOST_MESSAGE_AFTER)
        )
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )


def deliveries_sweep() -> None:
    """The beat task's work: recover stuck deliveries, queue the due ones (each claims itself)."""
    deliveries_recover_stuck()
    for delivery_id in deliveries_due():
        send_delivery.apply_async(kwargs={"delivery_id": delivery_id})


# --- composing and sending -----------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One message as the channel's client takes it."""

    title: str
    text: str  # markdown for robots, plain text for email
    mentions: dict = field(default_factory=dict)
    first: Delivery | None = None


def _union_mentions(items: list[Delivery]) -> dict:
    mobiles: list[str] = []
    user_ids: list[str] = []
    emails: list[str] = []
    everyone = False
    for item in items:
        mentions = item.mentions or {}
        mobiles += [str(m) for m in mentions.get("mobiles") or [] if str(m) not in mobiles]
        user_ids += [str(u) for u in mentions.get("user_ids") or [] if str(u) not in user_ids]
        emails += [str(e) for e in mentions.get("emails") or [] if str(e) not in emails]
        everyone = everyone or bool(mentions.get("all"))
    return {"mobiles": mobiles, "user_ids": user_ids, "emails": emails, "all": everyone}


def _section(channel: Channel, item: Delivery) -> str:
    """One item of a message: its text, with the heading and the link added when the text lacks them
    (the routing's messages carry both; a bare text, such as the test message, gets them here)."""
    first_line = item.text.split("\n", 1)[0]
    has_heading = item.title in first_line
    has_link = not item.link or item.link in item.text
    if channel.kind == ChannelKind.EMAIL:
        heading, link = item.title, item.link
    else:
        heading = f"#### {item.title}" if channel.kind == ChannelKind.DINGTALK else f"**{item.title}**"
        link = f"[{item.link}]({item.link})" if item.link else ""
    parts = ("" if has_heading else heading, item.text, "" if has_link else link)
    return "\n\n".join(part for part in parts if part)


def compose(channel: Channel, items: list[Delivery]) -> Outgoing:
    """The message that carries ``items`` (one delivery, or a batch with its leader first)."""
    first = items[0]
    title = first.title if len(items) == 1 else f"{first.title} (+{len(items) - 1})"
    separator = "\n\n----\n\n" if channel.kind == ChannelKind.EMAIL else "\n\n---\n\n"
    text = separator.join(_section(channel, item) for item in items)
    keyword = (channel.config or {}).get("keyword") or ""
    if channel.kind == ChannelKind.DINGTALK and keyword and keyword not in title:
        # The robot refuses (310000) a message without one of its keywords.
        title = f"[{keyword}] {title}"
    return Outgoing(title=title, text=text, mentions=_union_mentions(items), first=first)


def _size(channel: Channel, outgoing: Outgoing) -> int:
    return len(outgoing.title.encode()) + len(outgoing.text.encode())


def _truncate(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _sms_params(channel: Channel, item: Delivery) -> dict[str, str]:
    """The variables an approved alert template may use: ${service} ${env} ${severity} ${summary} ${link}
    ${project} ${title}."""
    labels = item.alert.labels if item.alert_id else {}
    project = channel.project.name if channel.project_id else (labels.get("project") or "OpsPortal")
    params = {
        "service": labels.get("service") or project,
        "env": labels.get("env") or (item.alert.environment if item.alert_id else ""),
        "severity": labels.get("severity") or (item.alert.severity if item.alert_id else ""),
        "summary": item.title,
        "title": item.title,
        "project": project,
        "link": item.link,
    }
    return {k: (str(v)[:SMS_PARAM_MAX] if k != "link" else str(v)) or "-" for k, v in params.items()}


def _deliver(channel: Channel, items: list[Delivery]) -> None:
    """Hand the message to the channel's client; raises the client's typed errors."""
    outgoing = compose(channel, items)
    config = channel.config or {}
    credentials = channel_credentials(channel)
    mentions = outgoing.mentions
    if channel.kind == ChannelKind.DINGTALK:
        from integrations.dingtalk import DingTalkRobot

        robot = DingTalkRobot.from_settings(
            credentials.get("access_token", ""),
            secret=credentials.get("signing_secret", ""),
            keyword=config.get("keyword", ""),
        )
        robot.send_markdown(
            outgoing.title,
            _truncate(outgoing.text, MESSAGE_MAX_BYTES[ChannelKind.DINGTALK]),
            at_mobiles=mentions["mobiles"],
            at_user_ids=mentions["user_ids"],
            at_all=mentions["all"],
        )
    elif channel.kind == ChannelKind.WECOM:
        from integrations.wecom import WeComRobot

        robot = WeComRobot.from_settings(credentials.get("key", ""))
        if mentions["mobiles"] or mentions["all"]:
            # WeCom markdown cannot @ a mobile number or everyone; a text message can.
            content = _truncate(f"{outgoing.title}\n\n{outgoing.text}", WECOM_TEXT_MAX)
            robot.send_text(
                content,
                mentioned_list=mentions["user_ids"] + (["@all"] if mentions["all"] else []),
                mentioned_mobile_list=mentions["mobiles"],
            )
        else:
            tags = " ".join(f"<@{user_id}>" for user_id in mentions["user_ids"])
            content = outgoing.text if len(items) == 1 else f"**{outgoing.title}**\n\n{outgoing.text}"
            robot.send_markdown(_truncate(content, WECOM_MARKDOWN_MAX) + (f"\n{tags}" if tags else ""))
    elif channel.kind == ChannelKind.EMAIL:
        from integrations.email import send_email

        recipients = list(dict.fromkeys([*config.get("recipients", []), *mentions["emails"]]))
        send_email(subject=outgoing.title, body=outgoing.text, recipients=recipients)
    elif channel.kind == ChannelKind.SMS:
        from integrations.sms.client import AliyunSms

        client = AliyunSms.from_settings()
        if client is None:
            raise Invalid(_("SMS is not configured (SMS_ACCESS_KEY_ID is empty)."))
        client.send(
            phone_numbers=config.get("numbers", []),
            sign_name=config.get("sign_name", ""),
            template_code=config.get("template_code", ""),
            template_param=_sms_params(channel, items[0]),
        )
    else:
        raise Invalid(f"unknown channel kind {channel.kind!r}")
