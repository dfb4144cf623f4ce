from django.db import models
from django.utils.translation import gettext_lazy as _


class ServiceType(models.TextChoices):
    CLUSTER_IP = "ClusterIP", _("In-cluster (ClusterIP)")
    LOAD_BALANCER = "LoadBalancer", _("Cloud load balancer (LoadBalancer)")


class AuthType(models.TextChoices):
    KUBECONFIG = "kubeconfig", _("Kubeconfig")
    TOKEN = "token", _("Bearer token")


DEFAULT_NAMESPACE_TEMPLATE = "{project}-{environment}"


class ClusterMonitoring(models.TextChoices):
    """Which Prometheus scrapes the cluster's environments, and so what the portal renders for it."""

    PORTAL = "portal", _("The portal's Prometheus (it discovers the pods through the portal)")
    SERVICE_MONITOR = (
        "service_monitor",
        _("Prometheus Operator in the cluster (a ServiceMonitor per environment)"),
    )


class ConfigChangeStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    APPLYING = "applying", _("Applying")
    APPLIED = "applied", _("Applied")
    FAILED = "failed", _("Failed")


CONFIG_CHANGE_TRANSITIONS: dict[str, frozenset[str]] = {
    ConfigChangeStatus.QUEUED: frozenset({ConfigChangeStatus.APPLYING, ConfigChangeStatus.FAILED}),
    ConfigChangeStatus.APPLYING: frozenset({ConfigChangeStatus.APPLIED, ConfigChangeStatus.FAILED}),
    ConfigChangeStatus.APPLIED: frozenset(),
    ConfigChangeStatus.FAILED: frozenset(),
}
# An environment has at most one change in these states at a time.
ACTIVE_CONFIG_CHANGE_STATUSES = frozenset({ConfigChangeStatus.QUEUED, ConfigChangeStatus.APPLYING})


class PrometheusConfigStatus(models.TextChoices):
    NEVER = "never", _("Not applied yet")
    APPLIED = "applied", _("Applied")
    CHECK_FAILED = "check_failed", _("Rejected by promtool")
    RELOAD_FAILED = "reload_failed", _("Reload failed")


class DashboardStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SYNCING = "syncing", _("Syncing")
    SYNCED = "synced", _("Synced")
    FAILED = "failed", _("Failed")


# A sync re-requested (a new activation, a scrape change) goes back to pending from anywhere; a sync whose
# Grafana stayed away through its retries goes back to pending too, for the sweeper to try again.
DASHBOARD_TRANSITIONS: dict[str, frozenset[str]] = {
    DashboardStatus.PENDING: frozenset({DashboardStatus.SYNCING, DashboardStatus.FAILED}),
    DashboardStatus.SYNCING: frozenset(
        {DashboardStatus.SYNCED, DashboardStatus.FAILED, DashboardStatus.PENDING}
    ),
    DashboardStatus.SYNCED: frozenset({DashboardStatus.PENDING}),
    DashboardStatus.FAILED: frozenset({DashboardStatus.PENDING}),
}


class AlertSeverity(models.TextChoices):
    """The severities of the portal's alert rules (the same values as alerting.choices.Severity, which
    sits above this app)."""

    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlertRule(models.TextChoices):
    """The six rules of every environment (observability.monitoring.alert_rules.RULES)."""

    ERROR_RATIO = "ErrorRatioHigh", _("Error ratio (5xx)")
    LATENCY_P95 = "LatencyP95High", _("p95 latency")
    POD_RESTARTING = "PodRestarting", _("Container restarts")
    PODS_NOT_READY = "PodsNotReady", _("Pods not ready")
    HPA_AT_MAXIMUM = "HPAAtMaximum", _("Autoscaler at its maximum")
    TARGET_DOWN = "TargetDown", _("Scrape targets down")
