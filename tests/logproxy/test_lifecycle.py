"""SIGTERM answers and flushes what was read; backpressure keeps the proxy's memory bounded."""

import signal
import socket
import threading
import time

from tests.helpers.kafka import unique_topic
from tests.helpers.logproxy import command, read_topic
from tests.polling import until

# The stated bound: 8 connections pushing as fast as they can without reading a reply grow the proxy by
# less than this (the caps on unanswered values, one read of input per connection, Kafka batches).
RSS_GROWTH_BOUND = 100 * 1024 * 1024


def _send_all(sock: socket.socket, payload: bytes, outcome: list) -> None:
    try:
        sock.sendall(payload)
        outcome.append("sent")
    except TimeoutError:
        outcome.append("blocked")
    except OSError as exc:
        outcome.append(type(exc).__name__)


def test_sigterm_answers_every_command_read_flushes_it_to_kafka_and_exits_0(kafka_server, logproxy_factory):
    topic = unique_topic("logs")
    proxy = logproxy_factory(kafka_server.bootstrap, LOGPROXY_DEFAULT_TOPIC=topic)
    values = [b"%08d:" % n + b"x" * 191 for n in range(300_000)]
    sock = proxy.connect(timeout=30)
    sender = threading.Thread(
        target=_send_all,
        args=(sock, b"".join(command("RPUSH", "logs:t", v) for v in values), []),
        daemon=True,
    )
    sender.start()
    until("the proxy to have read some values", lambda: proxy.metrics()["logproxy_lines_in_total"] > 5000)
    proxy.process.send_signal(signal.SIGTERM)
    received = b""
    while chunk := sock.recv(1 << 16):
        received += chunk
    sock.close()
    assert proxy.process.wait(30) == 0
    replies = received.split(b"\r\n")[:-1]
    assert set(replies) == {b":1"}, set(replies)
    assert 5000 < len(replies) <= len(values)
    # Everything the proxy read was answered, and everything answered is in Kafka once, in order.
    assert [r.value() for r in read_topic(kafka_server.bootstrap, topic)] == values[: len(replies)]
    assert "every value handed to Kafka was acknowledged" in proxy.log()


def _push_for(sock: socket.socket, chunk: bytes, seconds: float, sent: list) -> None:
    """Write pipelined commands as fast as the socket takes them for ``seconds``; never read a reply."""
    deadline = time.monotonic() + seconds
    total = 0
    sock.settimeout(1)
    try:
        while time.monotonic() < deadline:
            try:
                total += sock.send(chunk)
            except TimeoutError:
                continue  # the proxy is not reading this socket: keep pressing
    finally:
        sent.append(total)


def test_pushers_that_do_not_read_replies_cannot_grow_the_proxy(kafka_server, logproxy_factory):
    topic = unique_topic("logs")
    proxy = logproxy_factory(kafka_server.bootstrap, LOGPROXY_DEFAULT_TOPIC=topic)
    before = proxy.rss_bytes()
    chunk = b"".join(command("LPUSH", f"logs:bp{n % 4}", b"y" * 200) for n in range(5000))
    sockets, threads, sent = [], [], []
    for _ in range(8):
        sock = proxy.connect()
        thread = threading.Thread(target=_push_for, args=(sock, chunk, 8, sent), daemon=True)
        thread.start()
        sockets.append(sock)
        threads.append(thread)
    peak_rss, peak_inflight, paused_seen = before, 0.0, 0.0
    while any(thread.is_alive() for thread in threads):
        peak_rss = max(peak_rss, proxy.rss_bytes())
        metrics = proxy.metrics()
        peak_inflight = max(peak_inflight, metrics["logproxy_inflight_values"])
        paused_seen = max(paused_seen, metrics["logproxy_paused_connections"])
        time.sleep(0.05)
    # The pushers could write far faster than Kafka acknowledges; the proxy read only what fits its caps.
    assert paused_seen >= 1, "the proxy never stopped reading a pusher's socket"
    # LOGPROXY_MAX_UNANSWERED_BYTES (4 MiB of 200-byte values) plus one read (256 KiB of 229-byte
    # commands) per connection.
    assert peak_inflight <= (4 << 20) // 200 + 8 * ((256 << 10) // 229 + 1), peak_inflight
    assert peak_rss - before < RSS_GROWTH_BOUND, f"RSS grew by {(peak_rss - before) >> 20} MiB"
    assert sum(sent) > 8 * len(chunk)
    for sock in sockets:
        sock.close()
    until(
        "the pushers' connections to be gone",
        lambda: proxy.metrics()["logproxy_connections"] == 0,
        timeout=15,
    )
    assert proxy.healthz().status_code == 200
