"""Configuration from the environment. Anything invalid is a ``ConfigError`` with a sentence naming the
variable; ``python -m logproxy`` prints it and exits with status 2."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

# Kafka's own rule for topic names (kafka.common.internals.Topic).
TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    pattern: str
    topic: str


# The proxy serves pods behind a Service: it listens on every interface unless told otherwise.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True)
class Config:
    listen_host: str = ALL_INTERFACES
    listen_port: int = 6379
    metrics_host: str = ALL_INTERFACES
    metrics_port: int = 9121
    bootstrap_servers: str = "127.0.0.1:9092"
    default_topic: str = "logs"
    routes: tuple[Route, ...] = field(default_factory=tuple)
    password: str | None = None
    # A value with its record and batch headers must stay under the broker's default message.max.bytes
    # (1048588), so the default is 1,000,000 rather than 1 MiB.
    max_value_bytes: int = 1_000_000
    # The unacknowledged values one connection may have; beyond either cap the proxy stops reading its
    # socket. A single command larger than max_inflight_bytes is refused as oversized.
    max_inflight: int = 10_000
    max_inflight_bytes: int = 8 * 1024 * 1024
    # Values read and not yet answered over all connections: beyond it, connections with unanswered
    # values are not read. Kafka drains it well within the ack deadline (4 MiB ≈ 20k lines).
    max_unanswered_bytes: int = 4 * 1024 * 1024
    # Everything handed to Kafka and not yet acknowledged, over all connections (it outlives the
    # replies when Kafka is down); beyond it pushes fail at once.
    max_buffer_bytes: int = 64 * 1024 * 1024
    # Below Jedis' 2 s socket timeout, so a client sees -ERR rather than its own timeout.
    ack_timeout: float = 1.5
    linger_ms: int = 0
    # none, gzip (standard library) or lz4/zstd/snappy (need cramjam installed).
    compression: str | None = None
    max_batch_bytes: int = 1_000_000
    shutdown_timeout: float = 20.0

    def topic_for(self, key: bytes) -> str:
        name = key.decode("utf-8", "surrogateescape")
        for route in self.routes:
            if fnmatchcase(name, route.pattern):
                return route.topic
        return self.default_topic


def parse_address(value: str, *, name: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} must be host:port or :port, got {value!r}")
    host = host.strip("[]") or ALL_INTERFACES
    return host, int(port)


def parse_routes(value: str) -> tuple[Route, ...]:
    """``pattern=topic,pattern=topic``: fnmatch globs on the list key, the first match wins."""
    routes = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        pattern, sep, topic = (part.strip() for part in item.partition("="))
        if not sep or not pattern:
            raise ConfigError(f"LOGPROXY_TOPICS: {item!r} is not pattern=topic")
        if not TOPIC_NAME.match(topic):
            raise ConfigError(f"LOGPROXY_TOPICS: {topic!r} is not a valid Kafka topic name")
        routes.append(Route(pattern, topic))
    return tuple(routes)


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw}")
    return value


def _compression(raw: str) -> str | None:
    name = raw.strip().lower()
    if name in ("", "none"):
        return None
    if name not in ("gzip", "lz4", "zstd", "snappy"):
        raise ConfigError(f"LOGPROXY_COMPRESSION must be none, gzip, lz4, zstd or snappy, got {raw!r}")
    if name != "gzip":
        try:
            import cramjam  # noqa: F401
        except ImportError:
            raise ConfigError(f"LOGPROXY_COMPRESSION={name} needs the cramjam package installed") from None
    return name


def from_env(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    listen_host, listen_port = parse_address(
        env.get("LOGPROXY_LISTEN", "0.0.0.0:6379"), name="LOGPROXY_LISTEN"
    )
    metrics_host, metrics_port = parse_address(
        env.get("LOGPROXY_METRICS_LISTEN", ":9121"), name="LOGPROXY_METRICS_LISTEN"
    )
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not bootstrap:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is required (host:port[,host:port…])")
    for server in bootstrap.split(","):
        parse_address(server, name="KAFKA_BOOTSTRAP_SERVERS")
    default_topic = env.get("LOGPROXY_DEFAULT_TOPIC", "logs").strip()
    if not TOPIC_NAME.match(default_topic):
        raise ConfigError(f"LOGPROXY_DEFAULT_TOPIC: {default_topic!r} is not a valid Kafka topic name")
    config = Config(
        listen_host=listen_host,
        listen_port=listen_port,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        bootstrap_servers=bootstrap,
        default_topic=default_topic,
        routes=parse_routes(env.get("LOGPROXY_TOPICS", "")),
        password=env.get("LOGPROXY_PASSWORD") or None,
        max_value_bytes=_int(env, "LOGPROXY_MAX_VALUE_BYTES", Config.max_value_bytes),
        max_inflight=_int(env, "LOGPROXY_MAX_INFLIGHT", Config.max_inflight),
        max_inflight_bytes=_int(env, "LOGPROXY_MAX_INFLIGHT_BYTES", Config.max_inflight_bytes),
        max_unanswered_bytes=_int(env, "LOGPROXY_MAX_UNANSWERED_BYTES", Config.max_unanswered_bytes),
        max_buffer_bytes=_int(env, "LOGPROXY_MAX_BUFFER_BYTES", Config.max_buffer_bytes),
        ack_timeout=_seconds(env, "LOGPROXY_ACK_TIMEOUT_SECONDS", Config.ack_timeout),
        linger_ms=_int(env, "LOGPROXY_LINGER_MS", Config.linger_ms, minimum=0),
        compression=_compression(env.get("LOGPROXY_COMPRESSION", "none")),
        max_batch_bytes=_int(env, "LOGPROXY_MAX_BATCH_BYTES", Config.max_batch_bytes, minimum=1024),
        shutdown_timeout=_seconds(env, "LOGPROXY_SHUTDOWN_TIMEOUT_SECONDS", Config.shutdown_timeout),
    )
    if config.max_inflight_bytes < config.max_value_bytes:
        raise ConfigError("LOGPROXY_MAX_INFLIGHT_BYTES must be at least LOGPROXY_MAX_VALUE_BYTES")
    if config.max_buffer_bytes < config.max_inflight_bytes:
        raise ConfigError("LOGPROXY_MAX_BUFFER_BYTES must be at least LOGPROXY_MAX_INFLIGHT_BYTES")
    return config
