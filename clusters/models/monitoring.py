"""Monitoring state: the portal-managed Prometheus configuration's last apply, the Grafana dashboard
of each environment, kept in sync by a run (clusters.services.dashboards), and each environment's alert
rule settings (clusters.services.alert_rules writes them as a Prometheus rule file)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from clusters.choices import (
    DASHBOARD_TRANSITIONS,
    AlertRule,
    AlertSeverity,
    DashboardStatus,
    PrometheusConfigStatus,
)
from opsportal.runs import Run


class PrometheusConfigState(models.Model):
    """The outcome of the last apply of the portal-managed Prometheus configuration (one row, pk 1).

    ``applied_at`` is the last success; a later failure keeps it, so the page can say what still runs."""

    SINGLETON_PK = 1

    status = models.CharField(
        _("status"),
        max_length=16,
        choices=PrometheusConfigStatus.choices,
        default=PrometheusConfigStatus.NEVER,
    )
    error = models.TextField(_("error"), blank=True)
    config_sha256 = models.CharField(_("configuration SHA-256"), max_length=64, blank=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)
    attempted_at = models.DateTimeField(_("attempted at"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("Prometheus configuration")

    def __str__(self) -> str:
        return f"Prometheus configuration ({self.status})"

    @property
    def failed(self) -> bool:
        return self.status in (PrometheusConfigStatus.CHECK_FAILED, PrometheusConfigStatus.RELOAD_FAILED)

    @property
    def next_step(self) -> str:
        if self.status == PrometheusConfigStatus.CHECK_FAILED:
            return gettext(
                "Prometheus keeps its previous configuration. Fix what the message names (usually the "
                "base configuration, PROMETHEUS_CONFIG_BASE), then apply again."
            )
        if self.status == PrometheusConfigStatus.RELOAD_FAILED:
            return gettext(
                "The new file is written but Prometheus may still run the previous one. Check that "
                "Prometheus runs at PROMETHEUS_URL with --web.enable-lifecycle and can read the file, "
                "then apply again."
            )
        return ""


class Dashboard(Run):
    """One per environment. Each requested sync is a run (a new run token): pending until a worker takes
    it, syncing while it writes the folder, the data source and the dashboard, then synced or failed.
    A sync whose Grafana stayed away through every retry waits in pending, and the sweeper tries again."""

    environment = models.OneToOneField(
        "clusters.ProjectEnvironment", on_delete=models.CASCADE, related_name="dashboard"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=DashboardStatus.choices, default=DashboardStatus.PENDING
    )
    uid = models.CharField(_("dashboard uid"), max_length=40)
    folder_uid = models.CharField(_("folder uid"), max_length=40)
    # Grafana's path of the dashboard (/d/<uid>/<slug>), once saved; the page prefixes GRAFANA_PUBLIC_URL.
    url = models.CharField(_("URL"), max_length=255, blank=True)
    version = models.PositiveIntegerField(_("version"), default=0)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    # The last attempt failed for a transient reason (Grafana down): a give-up returns it to pending.
    retrying = models.BooleanField(default=False)
    requested_at = models.DateTimeField(_("requested"), auto_now_add=True)
    synced_at = models.DateTimeField(_("synced"), null=True, blank=True)

    TRANSITIONS = DASHBOARD_TRANSITIONS
    RUNNING_STATUSES = frozenset({DashboardStatus.PENDING, DashboardStatus.SYNCING})
    FINAL_STATUSES = frozenset({DashboardStatus.SYNCED, DashboardStatus.FAILED})
    FAILED_STATUS = DashboardStatus.FAILED
    EVENT_NAME, EVENT_KEY = "dashboard", "dashboard"
    PROJECT_ID = "environment__project_id"

    class Meta:
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboards")

    def __str__(self) -> str:
        return f"{self.uid} ({self.status})"

    def run_label(self) -> str:
        return gettext("Dashboard %(uid)s") % {"uid": self.uid}


class AlertRuleSetting(models.Model):
    """One environment's choice for one alert rule; a rule without a row runs with its defaults
    (observability.monitoring.alert_rules.RULES). Goes with the environment (teardown)."""

    environment = models.ForeignKey(
        "clusters.ProjectEnvironment", on_delete=models.CASCADE, related_name="alert_rule_settings"
    )
    rule = models.CharField(_("rule"), max_length=32, choices=AlertRule.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    threshold = models.FloatField(_("threshold"))
    for_seconds = models.PositiveIntegerField(_("for (seconds)"))
    severity = models.CharField(_("severity"), max_length=8, choices=AlertSeverity.choices)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("alert rule setting")
        verbose_name_plural = _("alert rule settings")
        constraints = [
            models.UniqueConstraint(fields=["environment", "rule"], name="unique_environment_alert_rule")
        ]

    def __str__(self) -> str:
        return f"{self.environment_id}/{self.rule}"


class AlertRuleFile(models.Model):
    """The environment's rule file as last written: pending while a write is queued, the cause when the
    last write or reload failed (Prometheus then runs the previous file), and the last success."""

    environment = models.OneToOneField(
        "clusters.ProjectEnvironment", on_delete=models.CASCADE, related_name="alert_rule_file"
    )
    requested_at = models.DateTimeField(_("requested"), null=True, blank=True)
    attempted_at = models.DateTimeField(_("attempted at"), null=True, blank=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("alert rule file")

    def __str__(self) -> str:
        return f"rule file of {self.environment_id}"

    @property
    def status(self) -> str:
        if self.requested_at and (self.attempted_at is None or self.requested_at > self.attempted_at):
            return "pending"
        if self.error:
            return "failed"
        return "applied" if self.applied_at else "pending"
