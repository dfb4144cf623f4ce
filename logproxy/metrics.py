"""The proxy's Prometheus metrics and a small HTTP server for ``/metrics`` and ``/healthz``.

Counters are incremented once per read chunk or per Kafka batch, never per value, so they cost nothing
measurable at 100k lines/s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.lines_in = Counter(
            "logproxy_lines_in", "Values received in LPUSH/RPUSH/LPUSHX/RPUSHX commands.", registry=registry
        )
        self.lines_out = Counter(
            "logproxy_lines_out", "Values Kafka acknowledged (acks=all).", registry=registry
        )
        self.acks = Counter(
            "logproxy_acks",
            "Push commands answered, by result: ok (:N after Kafka's ack) or error (-ERR).",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "logproxy_errors",
            "Errors by reason: kafka_timeout, kafka_error, buffer_full, oversized, protocol, noauth, "
            "wrongpass, unknown_command, wrong_arguments.",
            ["reason"],
            registry=registry,
        )
        self.ack_latency = Histogram(
            "logproxy_ack_latency_seconds",
            "From reading a pipeline chunk to Kafka acknowledging all its values.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0),
            registry=registry,
        )
        self.connections = Gauge("logproxy_connections", "Open client connections.", registry=registry)
        self.connections_total = Counter(
            "logproxy_connections_accepted", "Client connections accepted.", registry=registry
        )
        self.inflight = Gauge(
            "logproxy_inflight_values",
            "Values received and not yet answered, all connections.",
            registry=registry,
        )
        self.buffer_bytes = Gauge(
            "logproxy_producer_buffer_bytes",
            "Bytes of values handed towards Kafka and not yet acknowledged or failed.",
            registry=registry,
        )
        self.paused = Gauge(
            "logproxy_paused_connections",
            "Connections whose socket is not read (backpressure).",
            registry=registry,
        )
        self.kafka_up = Gauge(
            "logproxy_kafka_up",
            "1 when the last probe or batch reached Kafka, 0 when it did not.",
            registry=registry,
        )
        self.kafka_error = Gauge(
            "logproxy_kafka_last_error",
            "1 for the reason Kafka was last found unreachable (the label says why), 0 once it is back.",
            ["reason"],
            registry=registry,
        )
        self._last_reason: str | None = None

    def set_kafka(self, up: bool, reason: str | None = None) -> None:
        self.kafka_up.set(1 if up else 0)
        if up:
            if self._last_reason is not None:
                self.kafka_error.labels(self._last_reason).set(0)
            return
        reason = reason or "unknown"
        if self._last_reason not in (None, reason):
            self.kafka_error.remove(self._last_reason)
        self._last_reason = reason
        self.kafka_error.labels(reason).set(1)


async def serve_http(
    host: str, port: int, metrics: Metrics, health: Callable[[], tuple[int, dict]]
) -> asyncio.Server:
    """GET /metrics (Prometheus text) and GET /healthz (200 while serving, 503 while draining; the body
    says whether Kafka is reachable, which is not a reason to restart the proxy)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].split(b"?")[0] if request.count(b" ") >= 2 else b""
            if path == b"/metrics":
                status, body, ctype = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif path == b"/healthz":
                status, payload = health()
                body, ctype = json.dumps(payload).encode(), "application/json"
            else:
                status, body, ctype = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)
