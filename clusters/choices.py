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
