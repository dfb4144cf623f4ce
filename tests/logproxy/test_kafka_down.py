"""Kafka stopped by PID: the proxy stays up, answers PING, refuses pushes with -ERR within its ack deadline,
says why in /metrics, and delivers what it was handed once Kafka is back (at-least-once)."""

import time

import pytest
import redis

from tests.helpers.kafka import unique_topic
from tests.helpers.logproxy import read_topic
from tests.polling import until

DEADLINE = 1.5


def test_kafka_down_then_back(kafka_server_factory, logproxy_factory):
    broker = kafka_server_factory()
    topic = unique_topic("logs")
    proxy = logproxy_factory(
        broker.bootstrap, LOGPROXY_DEFAULT_TOPIC=topic, LOGPROXY_ACK_TIMEOUT_SECONDS=str(DEADLINE)
    )
    # Jedis-like: a socket timeout of 2 s, above the proxy's deadline.
    client = redis.Redis(port=proxy.port, socket_timeout=2, protocol=2)
    before = [f"before-{n}".encode() for n in range(300)]
    pipe = client.pipeline(transaction=False)
    for value in before:
        pipe.rpush("logs:svc", value)
    assert pipe.execute() == [1] * len(before)

    broker.stop()
    during = []
    for n in range(3):
        value = f"during-{n}".encode()
        started = time.monotonic()
        with pytest.raises(redis.ResponseError, match="kafka did not acknowledge within 1.5s"):
            client.rpush("logs:svc", value)
        # Within the proxy's deadline and under Jedis' 2 s socket timeout (this client's, too).
        assert time.monotonic() - started < 2.0
        during.append(value)
        assert client.ping() is True

    def says_down():
        metrics = proxy.metrics()
        return metrics["logproxy_kafka_up"] == 0 and any(
            name.startswith("logproxy_kafka_last_error{") and value == 1 for name, value in metrics.items()
        )

    until("/metrics to say Kafka is down, and why", says_down, timeout=10)
    assert proxy.healthz().json()["kafka_up"] is False
    assert proxy.metrics()['logproxy_errors_total{reason="kafka_timeout"}'] == 3

    broker.start()
    until("pushes to work again after Kafka restarted", lambda: _push_works(client), timeout=60)
    assert proxy.metrics()["logproxy_kafka_up"] == 1

    values = [r.value() for r in read_topic(broker.bootstrap, topic, settle=1)]
    # Acknowledged before the stop: every one exactly once, in order.
    assert [v for v in values if v.startswith(b"before-")] == before
    # Refused with -ERR during the outage: the producer kept them and delivered them (at-least-once).
    assert all(v in values for v in during)


def _push_works(client) -> bool:
    try:
        return client.rpush("logs:svc", b"after") == 1
    except redis.ResponseError:
        return False


def test_the_proxy_starts_before_kafka_answers_meanwhile_and_connects_when_it_comes(
    kafka_server_factory, logproxy_factory
):
    broker = kafka_server_factory()
    broker.stop()
    topic = unique_topic("logs")
    proxy = logproxy_factory(
        broker.bootstrap, wait_kafka=False, LOGPROXY_DEFAULT_TOPIC=topic, LOGPROXY_ACK_TIMEOUT_SECONDS="0.5"
    )
    client = redis.Redis(port=proxy.port)
    assert client.ping() is True
    started = time.monotonic()
    with pytest.raises(redis.ResponseError, match="kafka did not acknowledge within 0.5s"):
        client.lpush("logs:x", "before-kafka")
    assert time.monotonic() - started < 1.0
    until("kafka_up to say 0", lambda: proxy.metrics()["logproxy_kafka_up"] == 0, timeout=5)
    assert proxy.healthz().status_code == 200

    broker.start()
    until("pushes to work once Kafka is there", lambda: _push_works(client), timeout=60)
    values = [r.value() for r in read_topic(broker.bootstrap, topic, settle=1)]
    assert b"before-kafka" in values and b"after" in values
