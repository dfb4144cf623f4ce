"""Reading one key's records back from Kafka, as the portal's log-pipeline view does (confluent-kafka).

The portal never joins a consumer group: it assigns partitions explicitly and keeps its own positions,
so nothing it reads moves anyone's committed offsets. A key's records are spread over the topic's
partitions by whatever partitioner the producer used (librdkafka and the Java client hash differently),
so every partition is read and records are filtered by key here.

- ``read_window``: the newest records of a key since a time (``offsets_for_times``), newest first, read
  backwards in chunks so that a cap is reached without scanning the whole window; a scan budget (records
  and seconds) bounds the work on a busy topic, and the result says when it stopped early.
- ``read_new``: what arrived after the given positions (the live tail), for at most ``max_seconds``; no
  positions means "from now".

Errors are those of ``integrations.errors``: a broker that cannot be reached or answer in time is
``Unreachable``/``Timeout``; a topic that does not exist yet is not an error (nothing was logged there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from integrations.errors import IntegrationError, Invalid, Timeout, Unauthorized, Unreachable

logger = logging.getLogger(__name__)

SYSTEM = "Kafka"
# A page and a tail run wait for these calls; a healthy broker answers metadata in milliseconds.
DEFAULT_TIMEOUT = 5.0
CHUNK = 2000  # offsets read per partition and step when going backwards
POLL_SECONDS = 0.2

_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}
_TIMED_OUT = {KafkaError._TIMED_OUT, KafkaError._TIMED_OUT_QUEUE, KafkaError.REQUEST_TIMED_OUT}
_NO_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    timestamp_ms: int  # the record's timestamp (the producer's create time unless the topic says otherwise)
    key: bytes | None
    value: bytes


@dataclass
class WindowRead:
    records: list[Record]  # newest first
    capped: bool = False  # more matching records exist in the window than were returned
    complete: bool = True  # False: the scan budget ran out before the window's start was reached
    scanned: int = 0


@dataclass
class NewRecords:
    records: list[Record]  # oldest first, per partition in offset order
    positions: dict[int, int] = field(default_factory=dict)  # the next offset to read, per partition
    skipped: int = 0  # records passed over because more arrived than max_records


def error_from(exc: KafkaException | KafkaError, bootstrap: str) -> IntegrationError:
    """The typed error for a failed Kafka call."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    code = error.code() if isinstance(error, KafkaError) else None
    cause = error.str() if isinstance(error, KafkaError) else str(error)
    if code in _UNREACHABLE:
        return Unreachable(f"cannot connect to Kafka at {bootstrap}", cause=cause)
    if code in _TIMED_OUT:
        return Timeout(f"Kafka at {bootstrap} did not answer in time", cause=cause)
    if code in _DENIED:
        return Unauthorized(f"Kafka at {bootstrap} refused the portal", cause=cause)
    if code == KafkaError._INVALID_ARG:
        return Invalid(f"Kafka settings are not valid for {bootstrap}", cause=cause)
    retriable = bool(error.retriable()) if isinstance(error, KafkaError) else False
    return IntegrationError(f"Kafka at {bootstrap} failed", permanent=not retriable, cause=cause)


class KafkaReader:
    """One short-lived reader of a broker (a consumer without a group). Use as a context manager."""

    def __init__(
        self, bootstrap: str, *, timeout: float = DEFAULT_TIMEOUT, client_id: str = "opsportal"
    ) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._errors: list[KafkaError] = []
        config = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            # Required by the client even though no group is joined and nothing is committed.
            "group.id": "opsportal-log-view",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "socket.timeout.ms": int(timeout * 1000),
            "socket.connection.setup.timeout.ms": int(timeout * 1000),
            "reconnect.backoff.ms": 500,
            "reconnect.backoff.max.ms": 2000,
            # Connection failures come back as typed errors (error_cb, exceptions); librdkafka's own log
            # would repeat each refused connect every backoff, so only its critical lines are kept.
            "log_level": 2,
            "error_cb": self._errors.append,
            "logger": logger,
        }
        try:
            self._consumer = Consumer(config)
        except KafkaException as exc:
            raise error_from(exc, bootstrap) from exc

    def __enter__(self) -> KafkaReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except (KafkaException, RuntimeError):
                logger.debug("closing a Kafka reader failed", exc_info=True)

    def _fail(self, exc: KafkaException) -> IntegrationError:
        # A metadata timeout while the brokers are down says "timed out"; the error callback knows why.
        for seen in self._errors:
            if seen.code() in _UNREACHABLE:
                return error_from(seen, self.bootstrap)
        return error_from(exc, self.bootstrap)

    # --- metadata ------------------------------------------------------------------------------------

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; [] when the topic does not exist (yet)."""
        try:
            metadata = self._consumer.list_topics(topic, timeout=self.timeout)
        except KafkaException as exc:
            raise self._fail(exc) from exc
        if not metadata.brokers:
            raise Unreachable(f"cannot connect to Kafka at {self.bootstrap}", cause="no broker answered")
        found = metadata.topics.get(topic)
        if found is None:
            return []
        if found.error is not None:
            if found.error.code() in _NO_TOPIC:
                return []
            raise error_from(found.error, self.bootstrap)
        return sorted(found.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(the first offset still kept, the offset the next record will get)."""
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self.timeout, cached=False
            )
        except KafkaException as exc:
            raise self._fail(exc) from exc
        return low, high

    def offsets_at(self, topic: str, partitions: list[int], timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is at or after ``timestamp_ms``; -1: none."""
        if not partitions:
            return {}
        try:
            found = self._consumer.offsets_for_times(
                [TopicPartition(topic, p, timestamp_ms) for p in partitions], timeout=self.timeout
            )
        except KafkaException as exc:
            raise self._fail(exc) from exc
        result = {}
        for tp in found:
            if tp.error is not None:
                raise error_from(tp.error, self.bootstrap)
            result[tp.partition] = tp.offset
        return result

    # --- reading ---------------------------------------------------------------------------------------

    def _read_range(
        self, topic: str, partition: int, start: int, end: int, *, deadline: float
    ) -> tuple[list[Record], int]:
        """Records of one partition with offsets in [start, end), and the next offset not read (``end``
        unless the deadline came first)."""
        records: list[Record] = []
        position = start
        if start >= end:
            return records, end
        try:
            self._consumer.assign([TopicPartition(topic, partition, start)])
            while position < end:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                batch = self._consumer.consume(num_messages=500, timeout=min(POLL_SECONDS, remaining))
                for message in batch:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise error_from(error, self.bootstrap)
                    offset = message.offset()
                    if offset >= end:
                        position = end
                        break
                    _kind, stamp = message.timestamp()
                    records.append(Record(partition, offset, stamp, message.key(), message.value() or b""))
                    position = offset + 1
                if not batch:
                    # Offsets can have holes (transaction markers, compaction): ask where the reader is.
                    (tp,) = self._consumer.position([TopicPartition(topic, partition)])
                    if tp.offset >= 0:
                        position = max(position, tp.offset)
        except KafkaException as exc:
            raise self._fail(exc) from exc
        finally:
            self._consumer.unassign()
        return records, min(position, end)

    def read_window(
        self,
        topic: str,
        *,
        since_ms: int,
        match: Callable[[Record], bool],
        limit: int,
        max_scan: int = 200_000,
        max_seconds: float = 10.0,
    ) -> WindowRead:
        """Up to ``limit`` records matching ``match`` with a timestamp at or after ``since_ms``, newest
        first. Each partition is read backwards from its end in chunks until it has ``limit`` matches or
        the window's start; ``max_scan`` records and ``max_seconds`` bound the whole scan."""
        deadline = time.monotonic() + max_seconds
        partitions = self.partitions(topic)
        starts = self.offsets_at(topic, partitions, since_ms)
        found: list[Record] = []
        capped = False
        complete = True
        scanned = 0
        for partition in partitions:
            low, high = self.watermarks(topic, partition)
            start = starts.get(partition, -1)
            if start < 0:  # nothing in this partition since then
                continue
            start = max(start, low)
            mine: list[Record] = []
            end = high
            while end > start:
                if scanned >= max_scan or time.monotonic() >= deadline:
                    complete = False
                    break
                lo = max(start, end - CHUNK)
                chunk, reached = self._read_range(topic, partition, lo, end, deadline=deadline)
                scanned += len(chunk)
                if reached < end:  # the deadline came mid-chunk: keep only a contiguous newest run
                    complete = False
                    break
                matches = [r for r in chunk if r.timestamp_ms >= since_ms and match(r)]
                mine = matches + mine
                if len(mine) > limit:
                    capped = True
                    mine = mine[-limit:]
                    break
                end = lo
            found.extend(mine)
        found.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset), reverse=True)
        if len(found) > limit:
            capped = True
            found = found[:limit]
        return WindowRead(records=found, capped=capped, complete=complete, scanned=scanned)

    def read_new(
        self,
        topic: str,
        positions: dict[int, int] | None,
        *,
        match: Callable[[Record], bool],
        start_ms: int | None = None,
        max_records: int = 2000,
        max_seconds: float = 1.0,
    ) -> NewRecords:
        """Records after ``positions`` (next offset per partition) that match, up to each partition's end
        as it was when the call began. A partition missing from ``positions`` starts at ``start_ms`` (its
        first record since then), or at its end without one (only what comes next); when more than
        ``max_records`` of a partition are waiting, the older ones are skipped and counted."""
        deadline = time.monotonic() + max_seconds
        positions = dict(positions or {})
        result = NewRecords(records=[], positions={})
        partitions = self.partitions(topic)
        missing = [p for p in partitions if p not in positions]
        since = self.offsets_at(topic, missing, start_ms) if start_ms is not None else {}
        for partition in partitions:
            low, high = self.watermarks(topic, partition)
            start = positions.get(partition)
            if start is None:
                start = since.get(partition, -1)
                start = high if start < 0 else start
            elif start > high:  # the topic was recreated since: what comes next
                start = high
            start = max(start, low)
            if high - start > max_records:
                result.skipped += high - max_records - start
                start = high - max_records
            if start < high and time.monotonic() < deadline:
                records, start = self._read_range(topic, partition, start, high, deadline=deadline)
                result.records.extend(r for r in records if match(r))
            result.positions[partition] = start
        return result
