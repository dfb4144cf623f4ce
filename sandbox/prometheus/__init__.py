"""Debian's real Prometheus, launched on loopback for `make run` and the tests (see docs/sandbox.md)."""

from sandbox.prometheus.server import (
    PrometheusError,
    PrometheusServer,
    base_config,
    exporter_address,
    find_binary,
    find_promtool,
    monitoring_token,
)

__all__ = [
    "PrometheusError",
    "PrometheusServer",
    "base_config",
    "exporter_address",
    "find_binary",
    "find_promtool",
    "monitoring_token",
]
