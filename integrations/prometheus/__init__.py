from integrations.prometheus.client import PrometheusClient

__all__ = ["PrometheusClient"]
