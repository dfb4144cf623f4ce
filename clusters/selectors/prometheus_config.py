"""Reads of the portal-managed Prometheus configuration's state (see clusters.services.monitoring_config)."""

from django.conf import settings

from clusters.models import PrometheusConfigState


def prometheus_config_managed() -> bool:
    """True when the portal writes Prometheus' configuration file (PROMETHEUS_CONFIG_FILE is set)."""
    return bool(settings.PROMETHEUS_CONFIG_FILE)


def prometheus_config_state() -> PrometheusConfigState:
    """The stored state, or an unsaved 'never applied' one before the first apply."""
    return PrometheusConfigState.objects.filter(pk=PrometheusConfigState.SINGLETON_PK).first() or (
        PrometheusConfigState(pk=PrometheusConfigState.SINGLETON_PK)
    )
