"""The Grafana dashboard of an environment, kept in sync by a run (clusters.services.dashboards)."""

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from clusters.choices import DASHBOARD_TRANSITIONS, DashboardStatus
from opsportal.runs import Run


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
