from django.db import models
from django.utils.translation import gettext_lazy as _


class Severity(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlertStatus(models.TextChoices):
    FIRING = "firing", _("Firing")
    RESOLVED = "resolved", _("Resolved")


class ChannelKind(models.TextChoices):
    DINGTALK = "dingtalk", _("DingTalk robot")
    WECOM = "wecom", _("WeCom robot")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")  # waiting for a worker, or for its next attempt (next_attempt_at)
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    BATCHED = "batched", _("Sent in a batch")  # merged into another delivery (batch) that was sent
    FAILED = "failed", _("Failed")  # permanent: a configuration error, or retries used up


class Mention(models.TextChoices):
    """Whom a critical alert's robot message @-mentions."""

    NONE = "none", _("Nobody")
    OWNER = "owner", _("The project's owner")
    ON_CALL = "on_call", _("The on-call person")


class NoticeMethod(models.TextChoices):
    """How one person wants a kind of workflow notice."""

    CHAT = "chat", _("Mention me in the project's chat channel")
    EMAIL = "email", _("Email me")
    OFF = "off", _("Do not notify me")
