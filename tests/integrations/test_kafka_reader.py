"""integrations.kafka against a real broker (3 partitions per topic): one key's records in a time window,
newest first and capped; what is new since the reader's own positions; typed errors."""

import time

import pytest

from integrations.errors import Unreachable
from integrations.kafka import KafkaReader
from sandbox.procs import free_port
from tests.helpers.kafka import unique_topic
from tests.helpers.log_pipeline import minutes_ago_ms, produce

pytestmark = pytest.mark.services


def _is(key: str):
    return lambda record: record.key == key.encode()


def test_a_window_holds_the_keys_newest_records_first_capped_and_bounded_in_time(kafka_server):
    topic = unique_topic("reader")
    old = minutes_ago_ms(90)
    produce(
        kafka_server.bootstrap,
        topic,
        [("logs:a:test", b"too old", old)]
        + [(k, f"{k} {i}".encode()) for i in range(30) for k in ("logs:a:test", "logs:b:test")],
    )
    with KafkaReader(kafka_server.bootstrap) as reader:
        assert len(reader.partitions(topic)) == 3
        every = reader.read_window(topic, since_ms=minutes_ago_ms(60), match=_is("logs:a:test"), limit=100)
        capped = reader.read_window(topic, since_ms=minutes_ago_ms(60), match=_is("logs:a:test"), limit=5)
        wider = reader.read_window(topic, since_ms=minutes_ago_ms(120), match=_is("logs:a:test"), limit=100)
    assert [r.value for r in every.records] == [f"logs:a:test {i}".encode() for i in reversed(range(30))]
    assert not every.capped and every.complete
    assert [r.value for r in capped.records] == [f"logs:a:test {i}".encode() for i in (29, 28, 27, 26, 25)]
    assert capped.capped
    assert len(wider.records) == 31 and wider.records[-1].value == b"too old"


def test_new_records_since_the_readers_positions(kafka_server):
    topic = unique_topic("reader")
    produce(kafka_server.bootstrap, topic, [("logs:a:test", b"before")])
    with KafkaReader(kafka_server.bootstrap) as reader:
        now = reader.read_new(topic, None, match=_is("logs:a:test"))
        assert now.records == []  # no start time: only what comes next
        backlog = reader.read_new(topic, None, match=_is("logs:a:test"), start_ms=minutes_ago_ms(1))
        assert [r.value for r in backlog.records] == [b"before"]
    produce(kafka_server.bootstrap, topic, [("logs:a:test", b"after"), ("logs:b:test", b"other")])
    with KafkaReader(kafka_server.bootstrap) as reader:
        later = reader.read_new(topic, now.positions, match=_is("logs:a:test"))
        again = reader.read_new(topic, later.positions, match=_is("logs:a:test"))
    assert [r.value for r in later.records] == [b"after"]
    assert again.records == [] and again.positions == later.positions


def test_more_new_records_than_the_cap_skips_the_oldest(kafka_server):
    topic = unique_topic("reader")
    produce(kafka_server.bootstrap, topic, [("logs:a:test", f"{i}".encode()) for i in range(50)])
    with KafkaReader(kafka_server.bootstrap) as reader:
        start = {p: 0 for p in reader.partitions(topic)}
        found = reader.read_new(topic, start, match=_is("logs:a:test"), max_records=10)
    # One key: one partition holds all 50 in order.
    assert [r.value for r in found.records] == [f"{i}".encode() for i in range(40, 50)]
    assert found.skipped == 40


def test_a_topic_that_does_not_exist_has_nothing_and_a_dead_broker_is_unreachable(kafka_server):
    with KafkaReader(kafka_server.bootstrap) as reader:
        missing = unique_topic("reader")
        assert reader.partitions(missing) == []
        assert reader.read_window(missing, since_ms=0, match=lambda r: True, limit=10).records == []
    started = time.monotonic()
    with pytest.raises(Unreachable) as error, KafkaReader(f"127.0.0.1:{free_port()}", timeout=2) as reader:
        reader.partitions("anything")
    assert time.monotonic() - started < 5
    assert "cannot connect to Kafka" in error.value.message
