from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from clusters.choices import PrometheusConfigStatus


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
