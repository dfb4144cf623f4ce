"""The log proxy speaks enough Redis for log appenders: redis-py (RESP3 and RESP2) and a raw socket push
through it to real Kafka, replies keep request order, and bad input gets -ERR and a closed connection."""

import json
import socket
import time
from collections import Counter

import pytest
import redis

from tests.helpers.kafka import unique_topic
from tests.helpers.logproxy import closed_by_peer, command, read_replies, read_topic


def line(service: str, n: int) -> bytes:
    return json.dumps({"service": service, "n": n, "msg": "x" * 40}).encode()


@pytest.fixture
def topic():
    return unique_topic("logs")


@pytest.fixture
def proxy(kafka_server, logproxy_factory, topic):
    return logproxy_factory(
        kafka_server.bootstrap, LOGPROXY_DEFAULT_TOPIC=topic, LOGPROXY_TOPICS=f"logs:pay:*={topic}-pay"
    )


@pytest.mark.parametrize("protocol", [3, 2])
def test_redis_py_pushes_and_every_value_arrives_in_kafka_exactly_once(kafka_server, proxy, topic, protocol):
    client = redis.Redis.from_url(proxy.url, protocol=protocol)
    assert client.ping() is True
    assert client.lpush("logs:orders", line("orders", 0), line("orders", 1)) == 2
    assert client.rpush("logs:orders", line("orders", 2)) == 1
    assert client.lpushx("logs:orders", line("orders", 3)) == 1
    assert client.rpushx("logs:pay:api", line("pay", 0)) == 1
    pipe = client.pipeline(transaction=False)
    for n in range(4, 2004):
        pipe.lpush("logs:orders", line("orders", n))
    assert pipe.execute() == [1] * 2000

    records = read_topic(kafka_server.bootstrap, topic)
    assert Counter(r.value() for r in records) == Counter(line("orders", n) for n in range(2004))
    assert {r.key() for r in records} == {b"logs:orders"}
    # One key, one partition, pushed order.
    assert [json.loads(r.value())["n"] for r in records] == list(range(2004))
    routed = read_topic(kafka_server.bootstrap, f"{topic}-pay")
    assert [(r.key(), r.value()) for r in routed] == [(b"logs:pay:api", line("pay", 0))]


def test_a_raw_pipeline_is_answered_in_request_order(kafka_server, proxy, topic):
    pipeline = [
        (command("PING"), b"+PONG\r\n"),
        (command("LPUSH", "logs:a", "a1"), b":1\r\n"),
        (command("GET", "logs:a"), b"-ERR unknown command 'GET'\r\n"),
        (command("RPUSH", "logs:b", "b1", "b2", "b3"), b":3\r\n"),
        (command("PING", "hello"), b"$5\r\nhello\r\n"),
        (command("SELECT", "3"), b"+OK\r\n"),
        (command("SELECT", "three"), b"-ERR value is not an integer or out of range\r\n"),
        (command("CLIENT", "SETNAME", "appender"), b"+OK\r\n"),
        (command("LPUSH", "logs:a"), b"-ERR wrong number of arguments for 'lpush' command\r\n"),
        (command("lpush", "logs:a", "a2"), b":1\r\n"),
        (command("FLUSHALL"), b"-ERR unknown command 'FLUSHALL'\r\n"),
        (command("LPUSH", "logs:a", "a3"), b":1\r\n"),
    ] * 50
    with proxy.connect() as sock:
        sock.sendall(b"".join(request for request, _ in pipeline))
        assert read_replies(sock, len(pipeline)) == [reply for _, reply in pipeline]
    records = read_topic(kafka_server.bootstrap, topic)
    assert Counter(r.value() for r in records) == Counter(
        {b"a1": 50, b"a2": 50, b"a3": 50, b"b1": 50, b"b2": 50, b"b3": 50}
    )
    assert [r.value() for r in records if r.key() == b"logs:a"] == [b"a1", b"a2", b"a3"] * 50


def test_partial_frames_and_inline_commands(kafka_server, proxy, topic):
    stream = (
        command("LPUSH", "logs:p", "partial-1") + command("PING") + command("RPUSH", "logs:p", "partial-2")
    )
    with proxy.connect() as sock:
        for at in range(len(stream)):  # one byte at a time: every frame arrives in pieces
            sock.sendall(stream[at : at + 1])
            time.sleep(0.001)
        assert read_replies(sock, 3) == [b":1\r\n", b"+PONG\r\n", b":1\r\n"]
        sock.sendall(b"PING\r\n")
        assert read_replies(sock, 1) == [b"+PONG\r\n"]
        sock.sendall(b"PI")
        time.sleep(0.05)
        sock.sendall(b"NG\r\nping inline\r\n\r\n")
        assert read_replies(sock, 2) == [b"+PONG\r\n", b"$6\r\ninline\r\n"]
        sock.sendall(b"QUIT\r\n")
        assert read_replies(sock, 1) == [b"+OK\r\n"]
        assert closed_by_peer(sock)
    assert sorted(r.value() for r in read_topic(kafka_server.bootstrap, topic)) == [
        b"partial-1",
        b"partial-2",
    ]


def test_quit_answers_what_came_before_it_and_closes(proxy):
    with proxy.connect() as sock:
        sock.sendall(command("LPUSH", "logs:q", "v") + command("QUIT") + command("PING"))
        assert read_replies(sock, 2) == [b":1\r\n", b"+OK\r\n"]
        assert closed_by_peer(sock)


def test_password_noauth_wrongpass_and_auth(kafka_server, logproxy_factory):
    topic = unique_topic("logs")
    proxy = logproxy_factory(kafka_server.bootstrap, LOGPROXY_DEFAULT_TOPIC=topic, LOGPROXY_PASSWORD="s3cret")
    with proxy.connect() as sock:
        sock.sendall(command("LPUSH", "logs:x", "refused") + command("PING") + command("HELLO", "3"))
        replies = read_replies(sock, 3)
        assert replies[:2] == [b"-NOAUTH Authentication required.\r\n"] * 2
        assert replies[2].startswith(b"-NOAUTH HELLO must be called")
        sock.sendall(command("AUTH", "wrong") + command("AUTH", "default", "wrong"))
        assert (
            read_replies(sock, 2)
            == [b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"] * 2
        )
        sock.sendall(command("AUTH", "s3cret") + command("LPUSH", "logs:x", "accepted"))
        assert read_replies(sock, 2) == [b"+OK\r\n", b":1\r\n"]
    # redis-py authenticates with HELLO 3 AUTH default … (RESP3) or AUTH … (RESP2).
    for protocol in (3, 2):
        client = redis.Redis(port=proxy.port, password="s3cret", protocol=protocol)
        assert client.rpush("logs:x", f"resp{protocol}") == 1
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=proxy.port, password="nope", protocol=protocol).ping()
    values = sorted(r.value() for r in read_topic(kafka_server.bootstrap, topic))
    assert values == [b"accepted", b"resp2", b"resp3"]
    assert proxy.metrics()['logproxy_errors_total{reason="wrongpass"}'] >= 4


def test_hello_replies_per_protocol(proxy):
    with proxy.connect() as sock:
        sock.sendall(command("HELLO", "4"))
        assert read_replies(sock, 1) == [b"-NOPROTO sorry, this protocol version is not supported.\r\n"]
        sock.sendall(command("HELLO", "3", "SETNAME", "app"))
        sock.settimeout(5)
        reply = sock.recv(4096)
        assert (
            reply.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n") and b"$5\r\nproto\r\n:3\r\n" in reply
        )
        sock.sendall(command("HELLO", "2"))
        reply = sock.recv(4096)
        assert reply.startswith(b"*14\r\n") and b"$5\r\nproto\r\n:2\r\n" in reply


def test_an_oversized_value_gets_an_error_and_the_connection_closes(kafka_server, logproxy_factory):
    topic = unique_topic("logs")
    proxy = logproxy_factory(
        kafka_server.bootstrap,
        LOGPROXY_DEFAULT_TOPIC=topic,
        LOGPROXY_MAX_VALUE_BYTES="1024",
        LOGPROXY_MAX_INFLIGHT_BYTES="65536",
    )
    with proxy.connect() as sock:
        sock.sendall(
            command("LPUSH", "logs:o", b"x" * 1024)
            + command("LPUSH", "logs:o", b"y" * 1025)
            + command("PING")
        )
        replies = read_replies(sock, 2)
        assert replies[0] == b":1\r\n"
        assert replies[1].startswith(b"-ERR value too large: 1025 bytes, at most 1024")
        assert closed_by_peer(sock)
    # A bulk string announced far bigger than any command may be is refused before it is all buffered.
    with proxy.connect() as sock:
        sock.sendall(b"*3\r\n$5\r\nLPUSH\r\n$6\r\nlogs:o\r\n$1000000000\r\n")
        try:
            for _ in range(64):
                sock.sendall(b"z" * 16384)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_replies(sock, 1)[0].startswith(b"-ERR command too large")
        assert closed_by_peer(sock)
    assert [r.value() for r in read_topic(kafka_server.bootstrap, topic)] == [b"x" * 1024]
    assert proxy.metrics()['logproxy_errors_total{reason="oversized"}'] == 2


@pytest.mark.parametrize(
    "garbage",
    [b"*1\r\n$abc\r\n", b"$4\r\nPING\r\n", b"*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n*1\r\n$1\r\nx\r\n", b":12\r\n"],
    ids=["bad-length", "not-an-array", "nested-array", "integer"],
)
def test_a_malformed_frame_gets_an_error_and_the_connection_closes(proxy, garbage):
    with proxy.connect() as sock:
        sock.sendall(command("PING") + garbage + command("PING"))
        replies = read_replies(sock, 2)
        assert replies[0] == b"+PONG\r\n"
        assert replies[1].startswith(b"-ERR Protocol error")
        assert closed_by_peer(sock)
    assert redis.Redis(port=proxy.port).ping() is True  # the proxy itself is fine


def test_health_and_metrics(proxy):
    health = proxy.healthz()
    assert health.status_code == 200 and health.json()["kafka_up"] is True
    client = redis.Redis(port=proxy.port)
    client.lpush("logs:m", "a", "b", "c")
    metrics = proxy.metrics()
    assert metrics["logproxy_lines_in_total"] == 3
    assert metrics["logproxy_lines_out_total"] == 3
    assert metrics['logproxy_acks_total{result="ok"}'] == 1
    assert metrics["logproxy_ack_latency_seconds_count"] == 1
    assert metrics["logproxy_connections"] == 1
    assert metrics["logproxy_kafka_up"] == 1


def test_a_client_that_leaves_mid_command_does_not_disturb_others(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"*3\r\n$5\r\nLPUSH\r\n$6\r\nlogs:h\r\n$100\r\nhalf")
    assert redis.Redis(port=proxy.port).lpush("logs:h", "whole") == 1


def test_compressed_batches_reach_consumers_as_the_lines_pushed(kafka_server, logproxy_factory):
    topic = unique_topic("logs")
    proxy = logproxy_factory(
        kafka_server.bootstrap, LOGPROXY_DEFAULT_TOPIC=topic, LOGPROXY_COMPRESSION="gzip"
    )
    pipe = redis.Redis(port=proxy.port).pipeline(transaction=False)
    for n in range(500):
        pipe.rpush("logs:gz", line("gz", n))
    assert pipe.execute() == [1] * 500
    assert [r.value() for r in read_topic(kafka_server.bootstrap, topic)] == [
        line("gz", n) for n in range(500)
    ]
