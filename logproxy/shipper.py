"""The Kafka side: one idempotent aiokafka producer per process, fed with whole record batches.

Where the time goes: ``AIOKafkaProducer.send()`` costs a coroutine, a future and a metadata check per
value. Instead each topic-partition has one open ``BatchBuilder`` that every connection appends to (about
1.3 µs a value). While aiokafka has a batch for that partition queued or in flight, the open batch keeps
filling; when aiokafka can take it, it is handed over with ``send_batch`` and one future acknowledges all
its values. Batches therefore grow with the load without any linger, and a lone value leaves at once.

A reader chunk's push commands share one ``Ticket``: it counts the batches holding its values and
resolves when all of them are acknowledged, when one fails, or at the ack deadline, whichever is first.
A value whose ticket expired stays in its batch: the idempotent producer retries it until Kafka answers,
so it is delivered when Kafka returns (at-least-once; the client got -ERR and may push it again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from logproxy.config import Config
from logproxy.metrics import Metrics

log = logging.getLogger("logproxy.kafka")

_CACHE_LIMIT = 10_000  # distinct list keys remembered per topic (service names: a few hundred at most)


class Ticket:
    """The acknowledgement of one chunk of push commands from one connection."""

    __slots__ = ("pending", "error", "done", "started", "timer", "on_done", "values")

    def __init__(self, on_done: Callable[[Ticket], None], started: float) -> None:
        self.pending = 1  # the chunk itself, released by ``seal`` once every value is placed
        self.error: str | None = None
        self.done = False
        self.started = started
        self.timer: asyncio.TimerHandle | None = None
        self.on_done = on_done
        self.values = 0

    def release(self, error: str | None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.pending -= 1
        if (self.pending == 0 or error is not None) and not self.done:
            self._finish()

    def expire(self) -> None:
        if not self.done:
            self.error = "kafka_timeout"
            self._finish()

    def _finish(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.on_done(self)


class _Batch:
    __slots__ = ("builder", "tickets", "last", "nbytes", "count")

    def __init__(self, builder) -> None:
        self.builder = builder
        self.tickets: list[Ticket] = []
        self.last: Ticket | None = None
        self.nbytes = 0
        self.count = 0


class _Partition:
    __slots__ = ("topic", "partition", "full", "open", "handing")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.full: deque[_Batch] = deque()  # closed batches waiting for aiokafka, oldest first
        self.open: _Batch | None = None
        self.handing = False

    def next_batch(self) -> _Batch | None:
        if self.full:
            return self.full.popleft()
        batch, self.open = self.open, None
        return batch


class _Topic:
    __slots__ = ("name", "partitions", "by_key", "waiting", "resolving")

    def __init__(self, name: str) -> None:
        self.name = name
        self.partitions: list[_Partition] = []
        self.by_key: dict[bytes, _Partition] = {}
        # Pushes that arrived before the topic's partitions were known: (key, values, ticket).
        self.waiting: list[tuple[bytes, list[bytes], Ticket]] = []
        self.resolving = False


class Shipper:
    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.buffer_bytes = 0
        self.buffer_values = 0
        self.up = False
        self.last_error: str | None = "not started"
        self._topics: dict[str, _Topic] = {}
        self._topic_of: dict[bytes, _Topic] = {}
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self.producer = AIOKafkaProducer(
            bootstrap_servers=config.bootstrap_servers,
            client_id="logproxy",
            acks="all",
            enable_idempotence=True,
            linger_ms=config.linger_ms,
            compression_type=config.compression,
            max_batch_size=config.max_batch_bytes,
            request_timeout_ms=30_000,
            retry_backoff_ms=100,
        )

    # lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background: the proxy serves (PING, -ERR on pushes) while Kafka is down."""
        self._spawn(self._connect())
        self._spawn(self._probe())

    async def _connect(self) -> None:
        while not self._stopping:
            try:
                await self.producer.start()
            except KafkaError as exc:
                if self.last_error != type(exc).__name__:
                    log.warning(
                        "Kafka at %s is not reachable (%s); retrying", self.config.bootstrap_servers, exc
                    )
                self._set_up(False, type(exc).__name__)
                await self.producer.client.close()
                await asyncio.sleep(1)
                continue
            self._set_up(True)
            log.info("connected to Kafka at %s", self.config.bootstrap_servers)
            self._ready.set()
            return

    async def _probe(self) -> None:
        """Once a second, ask Kafka for metadata so /metrics says why pushes fail even when idle."""
        while not self._stopping:
            await asyncio.sleep(1)
            if not self._ready.is_set():
                continue
            try:
                await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 2)
            except (KafkaError, TimeoutError) as exc:
                self._set_up(False, "connection" if isinstance(exc, KafkaError) else "metadata_timeout")
            else:
                self._set_up(True)

    def _set_up(self, up: bool, reason: str | None = None) -> None:
        if up != self.up or (not up and reason != self.last_error):
            log.log(logging.INFO if up else logging.WARNING, "kafka %s", "up" if up else f"down ({reason})")
        self.up = up
        self.last_error = None if up else reason
        self.metrics.set_kafka(up, reason)

    async def drain(self, timeout: float) -> int:
        """Hand every open batch to the producer and wait for Kafka's acknowledgements, at most ``timeout``
        seconds; then stop the producer. Returns the number of values still unacknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.buffer_values > 0:
            await asyncio.sleep(0.05)
        left = self.buffer_values
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        if self._ready.is_set():
            try:
                await asyncio.wait_for(self.producer.stop(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                pass
        else:
            await self.producer.client.close()
        return left

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # the hot path --------------------------------------------------------------------------------------

    def has_room(self, nbytes: int) -> bool:
        return self.buffer_bytes + nbytes <= self.config.max_buffer_bytes

    def push(self, key: bytes, values: list[bytes], nbytes: int, ticket: Ticket) -> None:
        """Place ``values`` (all under ``key``) in their partition's open batch. Synchronous: the caller is
        ``data_received``."""
        topic = self._topic_of.get(key)
        if topic is None:
            topic = self._topic_for(key)
        self.buffer_bytes += nbytes
        self.buffer_values += len(values)
        ticket.values += len(values)
        part = topic.by_key.get(key)
        if part is None:
            if not topic.partitions:
                ticket.pending += 1
                topic.waiting.append((key, values, ticket))
                if not topic.resolving:
                    topic.resolving = True
                    self._spawn(self._resolve(topic))
                return
            part = self._partition_for(topic, key)
        self._append(part, key, values, ticket)

    def _topic_for(self, key: bytes) -> _Topic:
        if len(self._topic_of) >= _CACHE_LIMIT:
            self._topic_of.clear()
        name = self.config.topic_for(key)
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name)
        self._topic_of[key] = topic
        return topic

    @staticmethod
    def _partition_for(topic: _Topic, key: bytes) -> _Partition:
        # The Java client's default partitioner (murmur2), so records land where any Kafka client puts them.
        if len(topic.by_key) >= _CACHE_LIMIT:
            topic.by_key.clear()
        part = topic.partitions[(murmur2(key) & 0x7FFFFFFF) % len(topic.partitions)]
        topic.by_key[key] = part
        return part

    def _append(self, part: _Partition, key: bytes, values: list[bytes], ticket: Ticket) -> None:
        batch = part.open
        for value in values:
            if batch is None:
                batch = part.open = _Batch(self.producer.create_batch())
            if batch.builder.append(timestamp=None, key=key, value=value) is None:
                part.full.append(batch)
                batch = part.open = _Batch(self.producer.create_batch())
                # An empty builder takes any record, whatever its size.
                batch.builder.append(timestamp=None, key=key, value=value)
            batch.count += 1
            batch.nbytes += len(value)
            if batch.last is not ticket:
                batch.last = ticket
                batch.tickets.append(ticket)
                ticket.pending += 1
        if not part.handing:
            part.handing = True
            self._spawn(self._hand_over(part))

    async def _hand_over(self, part: _Partition) -> None:
        """Give the partition's open batch to aiokafka whenever it can take one; ``send_batch`` waits while
        the previous batch is still queued, which is the time the next one fills."""
        batch = None
        try:
            await self._ready.wait()
            while (batch := part.next_batch()) is not None:
                batch.builder.close()
                try:
                    future = await self.producer.send_batch(
                        batch.builder, part.topic, partition=part.partition
                    )
                except (KafkaError, AssertionError) as exc:
                    # AssertionError: the partition vanished from the metadata (topic recreated smaller).
                    self._settle(batch, exc)
                    continue
                log.debug(
                    "handed %d values (%d bytes) to %s/%d",
                    batch.count,
                    batch.nbytes,
                    part.topic,
                    part.partition,
                )
                future.add_done_callback(lambda fut, batch=batch: self._settle(batch, _failure(fut)))
                batch = None
        except asyncio.CancelledError:
            for unsent in (batch, *part.full, part.open):
                if unsent is not None:
                    self._settle(unsent, KafkaError("the proxy stopped before Kafka took the batch"))
            part.full.clear()
            part.open = None
            raise
        finally:
            part.handing = False

    def _settle(self, batch: _Batch, exc: BaseException | None) -> None:
        self.buffer_bytes -= batch.nbytes
        self.buffer_values -= batch.count
        if exc is None:
            self.metrics.lines_out.inc(batch.count)
            if not self.up:
                self._set_up(True)
            reason = None
        else:
            reason = "kafka_error"
            self._set_up(False, type(exc).__name__)
            log.warning("Kafka refused a batch of %d values: %r", batch.count, exc)
        for ticket in batch.tickets:
            ticket.release(reason)

    async def _resolve(self, topic: _Topic) -> None:
        """Learn a topic's partitions (auto-creating it), then place the values that waited for them."""
        try:
            await self._ready.wait()
            while not topic.partitions:
                try:
                    found = await self.producer.partitions_for(topic.name)
                except KafkaError as exc:
                    self._set_up(False, type(exc).__name__)
                    await asyncio.sleep(0.5)
                    continue
                topic.partitions = [_Partition(topic.name, p) for p in sorted(found)]
            waiting, topic.waiting = topic.waiting, []
            for key, values, ticket in waiting:
                part = topic.by_key.get(key) or self._partition_for(topic, key)
                self._append(part, key, values, ticket)
                ticket.release(None)
        except asyncio.CancelledError:
            waiting, topic.waiting = topic.waiting, []
            for _key, values, ticket in waiting:
                self.buffer_bytes -= sum(map(len, values))
                self.buffer_values -= len(values)
                ticket.release("kafka_error")
            raise
        finally:
            topic.resolving = False


def _failure(future: asyncio.Future) -> BaseException | None:
    if future.cancelled():
        return KafkaError("cancelled")
    return future.exception()
