"""The log proxy (logproxy/) as a real subprocess, and reading a Kafka topic to its end, for tests and the
benchmark."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from sandbox.procs import free_port, port_open, spawn

ROOT = Path(__file__).resolve().parents[2]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


class ProxyProcess:
    """``python -m logproxy`` on free loopback ports; ``env`` adds LOGPROXY_* settings."""

    def __init__(
        self,
        workdir: Path,
        *,
        bootstrap: str,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.workdir = Path(workdir)
        self.python = python
        self.bootstrap = bootstrap
        self.env = dict(env or {})
        self.port = 0
        self.metrics_port = 0
        self.process: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.workdir / "logproxy.log"

    def start(self, timeout: float = 20, *, wait_kafka: bool = True) -> ProxyProcess:
        """Start and wait until it listens and (``wait_kafka``) has connected to Kafka."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "LOGPROXY_LISTEN": f"127.0.0.1:{self.port}",
            "LOGPROXY_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            **self.env,
        }
        self.process = spawn([self.python, "-m", "logproxy"], log=self.log_file, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while not (port_open(self.port) and port_open(self.metrics_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the log proxy did not start:\n{self.log()}")
            time.sleep(0.05)
        while wait_kafka and not self.healthz().json()["kafka_up"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the log proxy did not connect to Kafka:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 10) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value}."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return {m[1]: float(m[2]) for line in text.splitlines() if (m := _SAMPLE.match(line))}

    def healthz(self) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=5)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def read_replies(sock: socket.socket, count: int, timeout: float = 30) -> list[bytes]:
    """``count`` RESP replies, each as its bytes (simple strings, errors, integers, bulk strings)."""
    buffer, at = b"", 0
    replies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        while len(replies) < count and (end := buffer.find(b"\r\n", at)) >= 0:
            size = int(buffer[at + 1 : end]) if buffer[at : at + 1] == b"$" else -1
            stop = end + 2 + (size + 2 if size >= 0 else 0)
            if stop > len(buffer):
                break
            replies.append(buffer[at:stop])
            at = stop
        if len(replies) >= count:
            return replies
        buffer, at = buffer[at:], 0
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError(f"closed after {len(replies)} of {count} replies: {replies[-3:]}")
        buffer += chunk


def closed_by_peer(sock: socket.socket, timeout: float = 5) -> bool:
    """True when the other side closes the connection (after whatever it still sends) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def command(*args: bytes | str) -> bytes:
    parts = [arg.encode() if isinstance(arg, str) else arg for arg in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def read_topic(bootstrap: str, topic: str, timeout: float = 30, settle: float = 0.0) -> list:
    """Every record of ``topic`` up to its end offsets (each partition read to its high watermark), so a
    count is exact: duplicates show. ``settle`` waits that long first for late deliveries."""
    from confluent_kafka import Consumer, TopicPartition

    time.sleep(settle)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        left = {p for p, end in ends.items() if end > 0}
        records: list = []
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                continue
            records.append(message)
            if message.offset() + 1 >= ends[message.partition()]:
                left.discard(message.partition())
        assert not left, f"partitions {sorted(left)} of {topic} were not read to their end within {timeout}s"
        return records
    finally:
        consumer.close()
