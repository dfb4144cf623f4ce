"""Producing to and reading from a real Kafka broker in tests (confluent-kafka, as the portal uses)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


def unique_topic(prefix: str = "t") -> str:
    """A topic name no other test uses (the session's broker is shared; topics are auto-created)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes] | tuple[bytes | None, bytes, int]],
    timeout: float = 30,
) -> list:
    """Produce ``(key, value)`` or ``(key, value, timestamp_ms)`` records with acks=all and wait for every
    acknowledgement; returns the delivered messages (an error on any fails the test)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            # Java's partitioner, which aiokafka (the log proxy) also uses: a key lands where it would there.
            "partitioner": "murmur2_random",
        }
    )
    delivered: list = []
    errors: list = []

    def on_delivery(error, message) -> None:
        (errors if error is not None else delivered).append(error or message)

    for key, value, *stamp in records:
        extra = {"timestamp": stamp[0]} if stamp else {}
        producer.produce(topic, value, key=key, on_delivery=on_delivery, **extra)
    left = producer.flush(timeout)
    assert left == 0 and not errors, f"{left} not delivered, errors {errors}"
    return delivered


def consume(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list:
    """Read ``count`` messages of ``topic`` from the beginning (all partitions, no consumer group
    offsets kept); fails when fewer arrive within ``timeout``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = metadata.topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                continue
            messages.append(message)
        assert len(messages) >= count, f"{len(messages)} of {count} messages arrived within {timeout:.0f}s"
        return messages
    finally:
        consumer.close()


def partitions(bootstrap: str, topic: str, timeout: float = 10) -> int:
    """How many partitions ``topic`` has (0 when it does not exist)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    found = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if found is None or found.error is not None:
        return 0
    return len(found.partitions)
