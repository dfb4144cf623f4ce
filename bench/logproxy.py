"""The log proxy against redis-server, side by side in one run on this machine:
``python -m bench logproxy`` (no database: it needs ``make kafka-server`` and redis-server on
PATH). Writes docs/bench-logproxy.md.

- pipelined LPUSH of 200-byte JSON lines with 1, 4 and 16 connections, through the proxy (real Kafka,
  acks=all) and straight to a real ``redis-server`` on a free port, driven by the same client;
- the unpipelined round trip (one LPUSH, wait for its reply, next);
- every line the proxy answered counted in Kafka afterwards (the topics' end offsets: a duplicate or a
  loss shows);
- 1 GiB pushed as fast as possible by 8 connections, with the proxy's peak RSS (VmHWM).

The client is deliberately cheap so that it measures the servers: per connection one thread writes
pre-encoded RESP (blocking when the server stops reading) and one counts the replies, which must all be
integers (no error). It is the same for both servers.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

LINES = int(os.environ.get("BENCH_LINES", "300000"))  # per pipelined measurement
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "2000"))
GIB = float(os.environ.get("BENCH_GIB", "1"))
LINE_BYTES = 200
CHUNK = 500  # commands per pre-encoded write
ROOT = Path(__file__).resolve().parents[1]


def json_line(service: str, n: int) -> bytes:
    """A 200-byte JSON log line that compresses like a real one: a varying timestamp, trace id and
    numbers in a fixed shape (not a run of one letter)."""
    trace = hashlib.blake2b(b"%d" % n, digest_size=8).hexdigest().encode()
    head = (
        b'{"ts":"2026-12-01T12:%02d:%02d.%03dZ","level":"INFO","service":"%s","trace":"%s",'
        b'"msg":"GET /api/orders/%d 200 in %dms","n":%d,"pad":"'
        % (n // 60000 % 60, n // 1000 % 60, n % 1000, service.encode(), trace, n * 7919 % 100000, n % 997, n)
    )
    return head + b"-" * (LINE_BYTES - len(head) - 2) + b'"}'


def lpush(key: bytes, value: bytes) -> bytes:
    return b"*3\r\n$5\r\nLPUSH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)


def chunks_for(key: str, first: int, count: int) -> list[bytes]:
    lines = [lpush(key.encode(), json_line(key, n)) for n in range(first, first + count)]
    return [b"".join(lines[at : at + CHUNK]) for at in range(0, len(lines), CHUNK)]


class Pusher:
    """One connection: a writer thread sends ``chunks`` (``repeat`` times) while a reader counts replies."""

    def __init__(self, port: int, chunks: list[bytes], lines: int, repeat: int = 1) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chunks, self.lines, self.repeat = chunks, lines * repeat, repeat
        self.errors: list[bytes] = []
        self.threads = [threading.Thread(target=self._write), threading.Thread(target=self._read)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
        self.sock.close()

    def _write(self) -> None:
        for _ in range(self.repeat):
            for chunk in self.chunks:
                self.sock.sendall(chunk)

    def _read(self) -> None:
        # Integer replies (":1" from the proxy, the list's length from redis-server), one line each; an
        # error reply is a line starting with "-".
        replies, last = 0, b"\n"
        while replies < self.lines:
            data = self.sock.recv(1 << 20)
            if not data:
                self.errors.append(b"closed")
                return
            if b"-" in data and b"\n-" in last + data and not self.errors:
                self.errors.append(data[:200])
            replies += data.count(b"\n")
            last = data[-1:]


def push_all(pushers: list[Pusher]) -> float:
    """Run the pushers side by side; the seconds until the last one is done."""
    started = time.perf_counter()
    for pusher in pushers:
        pusher.start()
    for pusher in pushers:
        pusher.join()
    return time.perf_counter() - started


def pipelined(port: int, key_prefix: str, connections: int, lines: int) -> float:
    per = lines // connections
    pushers = [Pusher(port, chunks_for(f"{key_prefix}:svc{i}", 0, per), per) for i in range(connections)]
    elapsed = push_all(pushers)
    errors = [e for p in pushers for e in p.errors]
    assert not errors, f"{key_prefix}: replies other than :1: {errors[:2]}"
    return per * connections / elapsed


def round_trips(port: int, key: str, count: int) -> list[float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for n in range(count):
        request = lpush(key.encode(), json_line(key, n))
        started = time.perf_counter()
        sock.sendall(request)
        reply = sock.recv(64)
        times.append(time.perf_counter() - started)
        assert reply.startswith(b":") and reply.endswith(b"\r\n"), reply
    sock.close()
    return times


def kafka_direct(bootstrap: str, topic: str, lines: int) -> float:
    """A reference without the proxy: librdkafka (confluent-kafka) producing the same lines from this
    Python process, acks=all, idempotent, linger 5 ms, 1 MB batches (one produce() call per line)."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    values = [json_line(f"direct:svc{n % 16}", n) for n in range(lines)]
    failed: list = []
    started = time.perf_counter()
    for n, value in enumerate(values):
        producer.produce(
            topic, value, key=b"direct:svc%d" % (n % 16), on_delivery=lambda e, m: e and failed.append(e)
        )
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0 and not failed, failed[:2]
    return lines / (time.perf_counter() - started)


def kafka_count(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            total += high - low
        return total
    finally:
        consumer.close()


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    from sandbox.kafka import KafkaServer
    from sandbox.procs import free_port, port_open, redis_server_args, spawn, stop
    from tests.helpers.logproxy import ProxyProcess

    work = Path(tempfile.mkdtemp(prefix="bench-logproxy-"))
    runs = ["p1", "p4", "p16", "rtt", "gib"]
    proxy_python = os.environ.get("BENCH_PROXY_PYTHON", sys.executable)
    kafka = KafkaServer(work / "kafka")
    kafka.start()
    redis_port = free_port()
    redis = spawn(
        redis_server_args(redis_port),
        log=work / "redis.log",
    )
    proxy = ProxyProcess(
        work / "proxy",
        bootstrap=kafka.bootstrap,
        env={"LOGPROXY_TOPICS": ",".join(f"{run}:*=bench-{run}" for run in runs)},
        python=proxy_python,
    )
    try:
        while not port_open(redis_port):
            time.sleep(0.05)
        proxy.start()
        # Warm up: topics created (the first pushes to a new topic may outlast the ack deadline while
        # Kafka creates it), connections and metadata in place.
        for run in runs:
            for _attempt in range(20):
                try:
                    pipelined(proxy.port, run, 1, 1000)
                    break
                except AssertionError:
                    time.sleep(0.5)
        time.sleep(2)  # what was refused during the warm-up still arrives (at-least-once)
        warm = {run: kafka_count(kafka.bootstrap, f"bench-{run}") for run in runs}
        rows = []
        proxy_lines = dict.fromkeys(runs, 0)
        for connections in (1, 4, 16):
            run = f"p{connections}"
            lines = LINES - LINES % connections
            cpu_before = cpu_seconds(proxy.process.pid)
            through_proxy = pipelined(proxy.port, run, connections, lines)
            cpu = cpu_seconds(proxy.process.pid) - cpu_before
            proxy_lines[run] += lines
            direct = pipelined(redis_port, run, connections, lines)
            rows.append(
                (
                    f"pipelined LPUSH, {connections} connection{'s' if connections > 1 else ''}",
                    f"{through_proxy:,.0f} lines/s",
                    f"{direct:,.0f} lines/s",
                    f"{through_proxy / direct:.2f}×",
                    f"{cpu / lines * 1e6:.1f} µs CPU/line",
                )
            )
        direct_rate = kafka_direct(kafka.bootstrap, "bench-direct", LINES)
        assert kafka_count(kafka.bootstrap, "bench-direct") == LINES
        rows.append(
            (
                "no proxy: librdkafka (confluent-kafka) producing the same lines from Python",
                f"{direct_rate:,.0f} lines/s",
                "",
                "",
                "(no proxy)",
            )
        )
        proxy_rtt = round_trips(proxy.port, "rtt:svc", ROUND_TRIPS)
        proxy_lines["rtt"] += ROUND_TRIPS
        redis_rtt = round_trips(redis_port, "rtt:svc", ROUND_TRIPS)
        rows.append(
            (
                "unpipelined round trip (median / p99)",
                f"{statistics.median(proxy_rtt) * 1e3:.2f} / {_p99(proxy_rtt) * 1e3:.2f} ms "
                f"({len(proxy_rtt) / sum(proxy_rtt):,.0f} lines/s)",
                f"{statistics.median(redis_rtt) * 1e3:.2f} / {_p99(redis_rtt) * 1e3:.2f} ms "
                f"({len(redis_rtt) / sum(redis_rtt):,.0f} lines/s)",
                "",
                "",
            )
        )
        # 1 GiB by 8 connections: each repeats its own pre-encoded 2.5 MB of lines.
        per_connection = 12_500
        repeat = max(1, round(GIB * (1 << 30) / (8 * per_connection * LINE_BYTES)))
        base_rss = proc_status(proxy.process.pid, "VmRSS")
        peak = [base_rss]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], proc_status(proxy.process.pid, "VmRSS"))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        pushers = [
            Pusher(proxy.port, chunks_for(f"gib:svc{i}", 0, per_connection), per_connection, repeat)
            for i in range(8)
        ]
        cpu_before = cpu_seconds(proxy.process.pid), cpu_seconds(kafka.process.pid)
        elapsed = push_all(pushers)
        proxy_cores = (cpu_seconds(proxy.process.pid) - cpu_before[0]) / elapsed
        kafka_cores = (cpu_seconds(kafka.process.pid) - cpu_before[1]) / elapsed
        sampling.set()
        sampler.join()
        assert not [e for p in pushers for e in p.errors]
        gib_lines = 8 * per_connection * repeat
        proxy_lines["gib"] += gib_lines
        hwm = proc_status(proxy.process.pid, "VmHWM")
        rows.append(
            (
                f"{gib_lines * LINE_BYTES / (1 << 30):.2f} GiB by 8 connections",
                f"{gib_lines / elapsed:,.0f} lines/s, {gib_lines * LINE_BYTES / elapsed / 2**20:.1f} MiB/s",
                "",
                "",
                f"RSS {base_rss >> 20} MiB idle, peak {max(peak[0], hwm) >> 20} MiB; CPU: proxy "
                f"{proxy_cores:.2f} cores, Kafka {kafka_cores:.2f} cores; load {os.getloadavg()[0]:.1f}",
            )
        )
        counted = {run: kafka_count(kafka.bootstrap, f"bench-{run}") - warm[run] for run in runs}
        lost_or_duplicated = {
            run: counted[run] - proxy_lines[run] for run in runs if counted[run] != proxy_lines[run]
        }
        metrics = proxy.metrics()
    finally:
        proxy.stop()
        stop(redis)
        kafka.stop()
        shutil.rmtree(work, ignore_errors=True)  # a GiB of Kafka log

    table = "\n".join(
        [
            "| measure | through the proxy (Kafka, acks=all) | redis-server | proxy / redis | proxy |",
            "|---|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in rows),
        ]
    )
    counted_line = (
        f"Counted in Kafka afterwards: {sum(counted.values()):,} records for {sum(proxy_lines.values()):,} "
        f"lines answered `:1` ({lost_or_duplicated or 'every line exactly once'}); "
        f"the proxy's own count of acknowledged values: {metrics['logproxy_lines_out_total']:,.0f} "
        "(including the warm-up lines)."
    )
    header = (
        f"# Log proxy throughput\n\nMeasured {time.strftime('%Y-%m-%d %H:%M')} on this {os.cpu_count()}-core "
        f"machine (Python {platform.python_version()}, shared with other work: figures vary between runs), "
        f"one run of `python -m bench logproxy`: {LINES:,} lines of {LINE_BYTES} bytes per pipelined "
        f"measurement, Kafka 4.4.0 single node (3 partitions per topic), redis-server "
        f"{_redis_version()} without persistence, the proxy with its defaults"
        f"{' (uvloop)' if _has_uvloop(proxy_python) else ' (asyncio, no uvloop)'}."
    )
    print(table)
    print(counted_line)
    (ROOT / "docs" / "bench-logproxy.md").write_text(f"{header}\n\n{table}\n\n{counted_line}\n")
    return 0 if not lost_or_duplicated else 1


def _has_uvloop(python: str) -> bool:
    import subprocess

    return subprocess.run([python, "-c", "import uvloop"], capture_output=True).returncode == 0


def _p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def _redis_version() -> str:
    import subprocess

    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return next((part.split("=")[1] for part in out.split() if part.startswith("v=")), "?")


if __name__ == "__main__":
    sys.exit(main())
