"""The proxy's configuration: documented defaults, the topic mapping, and exit status 2 on nonsense."""

import shutil
import subprocess
import sys

import pytest

from logproxy.config import ALL_INTERFACES, ConfigError, Route, from_env, parse_routes

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}


def test_defaults():
    config = from_env(BASE)
    assert (config.listen_host, config.listen_port) == (ALL_INTERFACES, 6379)
    assert (config.metrics_host, config.metrics_port) == (ALL_INTERFACES, 9121)
    assert config.default_topic == "logs" and config.routes == ()
    assert config.ack_timeout == 1.5 and config.password is None
    assert config.max_value_bytes == 1_000_000 and config.max_inflight == 10_000


def test_the_topic_mapping_first_match_wins():
    config = from_env({**BASE, "LOGPROXY_TOPICS": "logs:orders:*=orders-logs, logs:*:audit=audit,logs:*=all"})
    assert config.routes[0] == Route("logs:orders:*", "orders-logs")
    assert config.topic_for(b"logs:orders:api") == "orders-logs"
    assert config.topic_for(b"logs:pay:audit") == "audit"
    assert config.topic_for(b"logs:pay:api") == "all"
    assert config.topic_for(b"metrics") == "logs"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "KAFKA_BOOTSTRAP_SERVERS is required"),
        ({**BASE, "LOGPROXY_LISTEN": "6379"}, "LOGPROXY_LISTEN must be host:port"),
        ({**BASE, "LOGPROXY_MAX_INFLIGHT": "many"}, "LOGPROXY_MAX_INFLIGHT must be an integer"),
        ({**BASE, "LOGPROXY_ACK_TIMEOUT_SECONDS": "0"}, "must be positive"),
        ({**BASE, "LOGPROXY_TOPICS": "logs:*"}, "is not pattern=topic"),
        ({**BASE, "LOGPROXY_TOPICS": "logs:*=bad topic"}, "not a valid Kafka topic name"),
        ({**BASE, "LOGPROXY_MAX_VALUE_BYTES": "99999999"}, "at least LOGPROXY_MAX_VALUE_BYTES"),
        ({**BASE, "LOGPROXY_COMPRESSION": "brotli"}, "must be none, gzip, lz4, zstd or snappy"),
    ],
)
def test_invalid_settings_are_refused_with_the_variable_named(env, message):
    with pytest.raises(ConfigError, match=message):
        from_env(env)


def test_parse_routes_ignores_blank_items():
    assert parse_routes(" , a=b ,") == (Route("a", "b"),)


def test_the_package_runs_alone_and_exits_2_on_a_bad_setting(tmp_path):
    """Only the package directory on the path (as in its image): nothing from the portal is needed."""
    shutil.copytree("logproxy", tmp_path / "logproxy")
    done = subprocess.run(
        [sys.executable, "-m", "logproxy"],
        cwd=tmp_path,
        env={
            "PYTHONPATH": str(tmp_path),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "LOGPROXY_MAX_INFLIGHT": "x",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "logproxy: invalid configuration: LOGPROXY_MAX_INFLIGHT must be an integer, got 'x'" in done.stderr
