"""Alerts received from Alertmanager, the channels that carry messages, and every send (Delivery)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from alerting.choices import AlertStatus, ChannelKind, DeliveryStatus, Mention, NoticeMethod, Severity
from opsportal.notices import NoticeKind
from opsportal.secrets import EncryptedTextField
from projects.choices import Environment


class Alert(models.Model):
    """One alert occurrence: Alertmanager's fingerprint (the label set) and when it started. A repeated
    notification of the same occurrence updates this row; a new startsAt is a new occurrence."""

    fingerprint = models.CharField(max_length=32)
    starts_at = models.DateTimeField(_("started"))
    ends_at = models.DateTimeField(_("ended"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=AlertStatus.choices)
    alertname = models.CharField(_("alert"), max_length=200)
    severity = models.CharField(
        _("severity"), max_length=16, choices=Severity.choices, default=Severity.WARNING
    )
    # From the labels ``project`` and ``env`` when they name a known project; null for portal-wide alerts.
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    environment = models.CharField(_("environment"), max_length=8, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict, blank=True)
    generator_url = models.URLField(max_length=1000, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "starts_at"], name="unique_alert_occurrence")
        ]
        indexes = [models.Index(fields=["project", "environment", "starts_at"])]
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"{self.alertname} ({self.status})"


class Channel(models.Model):
    """Where messages go: a DingTalk or WeCom robot, email recipients or SMS numbers. A channel without a
    project is portal-wide (the ops channel). Credentials live in ``secret`` (encrypted JSON, never shown
    back); ``config`` holds what may be shown (keyword, recipients, numbers, SMS sign name and template)."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="channels"
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=ChannelKind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    config = models.JSONField(default=dict, blank=True)
    secret = EncryptedTextField(_("credentials"), blank=True, default="")
    # The last permanent error (a configuration error shown to ops), cleared by a successful send.
    last_error = models.TextField(_("last error"), blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # A robot's identity without its credential (a hash of the kind and token or key): channels that use
    # one group robot share its 20 messages a minute. Empty for email and SMS.
    robot = models.CharField(max_length=64, blank=True, db_index=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_channel_name")]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Delivery(models.Model):
    """One message to one channel, and what became of it. Never deleted by sending: the delivery log."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(
        Alert, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    # What caused it: "alert-firing", "alert-resolved", "test", or an opsportal.notices kind.
    cause = models.CharField(_("cause"), max_length=40)
    status = models.CharField(
        _("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    title = models.CharField(_("title"), max_length=200)
    text = models.TextField(_("text"))  # Markdown for robots, plain text for email and SMS
    link = models.URLField(_("link"), max_length=1000, blank=True)
    # Robots: {"mobiles": [...], "user_ids": [...], "all": bool}; email/SMS: extra addressees.
    mentions = models.JSONField(default=dict, blank=True)
    # The delivery this one was merged into when the robot's rate limit made the portal batch.
    batch = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged")
    attempts = models.PositiveIntegerField(default=0)
    errcode = models.CharField(_("error code"), max_length=40, blank=True)
    error = models.TextField(_("error"), blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the last attempt was claimed: what the per-robot rate limit counts, and how a delivery left
    # "sending" by a lost worker is noticed.
    attempted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["channel", "status", "created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.cause} -> {self.channel} ({self.status})"


class Policy(models.Model):
    """Which channels of a project get its alerts of one environment and severity, and how often.

    Quiet hours (local time, settings.TIME_ZONE; start == end means none) hold back firing and resolved
    messages, except for critical alerts, which always go out. A firing alert whose fingerprint already
    reached a channel within ``repeat_interval_minutes`` is not sent to it again. ``mention`` applies to
    critical policies only: the robot message @-mentions the owner or the on-call person by mobile."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="alert_policies")
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices)
    channels = models.ManyToManyField(
        Channel, related_name="policies", blank=True, verbose_name=_("channels")
    )
    repeat_interval_minutes = models.PositiveIntegerField(
        _("repeat interval (minutes)"),
        default=240,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text=_("The same alert is not sent to a channel again within this time."),
    )
    quiet_start = models.TimeField(_("quiet hours start"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    send_resolved = models.BooleanField(_("send resolved"), default=True)
    mention = models.CharField(
        _("@-mention on critical"), max_length=16, choices=Mention.choices, default=Mention.NONE
    )
    on_call = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("on-call person"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "environment", "severity"], name="unique_alert_policy")
        ]
        ordering = ["project", "environment", "severity"]
        verbose_name = _("alert policy")
        verbose_name_plural = _("alert policies")

    def __str__(self) -> str:
        return f"{self.project} {self.environment} {self.severity}"


class NotificationPreference(models.Model):
    """How one person wants one kind of workflow notice (opsportal.notices.NoticeKind). No row: the
    kind's default (routing.DEFAULT_METHODS)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(_("notice"), max_length=40, choices=NoticeKind.choices)
    method = models.CharField(_("how"), max_length=8, choices=NoticeMethod.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="unique_notification_preference")
        ]
        ordering = ["user", "kind"]

    def __str__(self) -> str:
        return f"{self.user} {self.kind}: {self.method}"


class AlertTransition(models.Model):
    """The history of an alert occurrence: when it was seen firing, and when it resolved. Appended by the
    receiver only when the status changes (a repeated notification adds nothing)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="transitions")
    status = models.CharField(_("status"), max_length=16, choices=AlertStatus.choices)
    # Alertmanager's time of the change (startsAt for firing, endsAt for resolved).
    at = models.DateTimeField(_("at"))
    recorded_at = models.DateTimeField(auto_now_add=True)
    # When the routing made this change's messages (or found none due); null while that is still to do,
    # so the sweeper routes a change whose routing failed or was lost with its process.
    routed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["alert", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.alert_id} -> {self.status}"
