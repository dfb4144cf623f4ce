"""A project environment whose cluster has a log pipeline on a real Kafka, and its service's lines produced
there as the log proxy writes them (one record per line, keyed by the service's list key)."""

from __future__ import annotations

import json
import time
import uuid

from django.utils import timezone

from clusters.models import Cluster, LogPipeline, ProjectEnvironment
from tests.helpers import kafka


def pipeline_environment(people, bootstrap: str, *, topic: str = "", **pipeline_fields) -> ProjectEnvironment:
    """orders/test on a cluster nobody answers for (the page says it cannot read the cluster) whose log
    pipeline reads ``bootstrap``; all keys go to ``topic`` (a fresh one by default)."""
    suffix = uuid.uuid4().hex[:6]
    cluster = Cluster.objects.create(name=f"logs-{suffix}", environment="test", api_url="https://127.0.0.1:9")
    LogPipeline.objects.create(
        cluster=cluster,
        kafka_bootstrap_servers=bootstrap,
        default_topic=topic or f"app-logs-{suffix}",
        **pipeline_fields,
    )
    return ProjectEnvironment.objects.create(
        project=people.project,
        environment="test",
        cluster=cluster,
        namespace=f"orders-test-{suffix}",
        provisioned_at=timezone.now(),
    )


def line(level: str, msg: str, **fields) -> bytes:
    """A JSON log line as the demo services write it."""
    stamp = timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"ts": stamp, "level": level, "logger": "http", "msg": msg, **fields}).encode()


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes] | tuple[str, bytes, int]]) -> None:
    """``(key, value)`` or ``(key, value, timestamp_ms)`` records, acknowledged by Kafka before this
    returns, as the proxy writes them (record key = the service's list key)."""
    kafka.produce(bootstrap, topic, [(key.encode(), *rest) for key, *rest in records])


def minutes_ago_ms(minutes: float) -> int:
    return int((time.time() - minutes * 60) * 1000)
