"""The sandbox's real Kafka broker: a round trip, keyed order, restart on the same log directory, stop by pid,
loopback only, and pods producing through the listener on their bridge's gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from sandbox.kafka.server import KafkaServer
from sandbox.kube import podnet
from sandbox.kube.podnet import PodNetwork
from sandbox.procs import port_free
from tests.fixtures.ci import unavailable
from tests.helpers.kafka import consume, partitions, produce, unique_topic


def test_a_round_trip_keeps_each_keys_order(kafka_server: KafkaServer) -> None:
    topic = unique_topic()
    records = [(f"svc-{i % 8}".encode(), f'{{"n": {i}}}'.encode()) for i in range(40)]
    delivered = produce(kafka_server.bootstrap, topic, records)
    assert len(delivered) == 40
    messages = consume(kafka_server.bootstrap, topic, 40)
    assert sorted(m.value() for m in messages) == sorted(value for _, value in records)
    # Auto-created with 3 partitions: one key's records share a partition and keep their order there.
    assert partitions(kafka_server.bootstrap, topic) == 3
    assert {m.partition() for m in messages} == {0, 1, 2}
    for key in {key for key, _ in records}:
        mine = [m for m in messages if m.key() == key]
        assert len({m.partition() for m in mine}) == 1
        assert [m.value() for m in sorted(mine, key=lambda m: m.offset())] == [
            v for k, v in records if k == key
        ]


def test_the_broker_listens_on_loopback_only(kafka_server: KafkaServer) -> None:
    listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
    jvm = f"pid={kafka_server.process.pid},"
    ours = sorted(line.split()[3] for line in listening.splitlines() if jvm in line)
    ports = {kafka_server.port, kafka_server.controller_port}
    assert {int(a.rsplit(":", 1)[1]) for a in ours} == ports, ours
    assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in ours), ours


def test_a_restart_keeps_the_data_and_the_ports(kafka_server_factory) -> None:
    broker = kafka_server_factory(partitions=1)
    topic = unique_topic()
    produce(broker.bootstrap, topic, [(b"k", f"before-{i}".encode()) for i in range(5)])
    ports = (broker.port, broker.controller_port)
    old_pid = broker.process.pid

    assert broker.restart() == f"127.0.0.1:{ports[0]}"

    assert (broker.port, broker.controller_port) == ports
    assert broker.process.pid != old_pid
    log = broker.log_file.read_text(errors="replace")
    assert log.count("kafka.tools.StorageTool format") == 1  # formatted once, at the first start
    produce(broker.bootstrap, topic, [(b"k", b"after")])
    values = [m.value() for m in consume(broker.bootstrap, topic, 6)]
    assert values == [*(f"before-{i}".encode() for i in range(5)), b"after"]


def test_stop_ends_the_process_and_frees_the_ports(kafka_server_factory) -> None:
    broker = kafka_server_factory()
    pid = broker.process.pid
    broker.stop()
    assert broker.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert port_free(broker.port) and port_free(broker.controller_port)
    assert "shut down completed" in broker.log_file.read_text(errors="replace")  # SIGTERM, not SIGKILL
    broker.stop()  # a second stop is harmless


# --- pods reach it through their gateway -----------------------------------------------------------------


@pytest.fixture
def network():
    supported, reason = podnet.pods_supported()
    if not supported:
        unavailable(f"real pods unsupported here: {reason}")
    net = PodNetwork.claim(preferred=170)
    net.setup()
    try:
        yield net
    finally:
        net.teardown()


POD_PRODUCER = """
import sys
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1:3]
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
acks = []
producer.produce(topic, b"from the pod", key=b"pod", on_delivery=lambda e, m: acks.append(e))
left = producer.flush(30)
print(left, acks)
"""


def test_a_pod_produces_through_the_gateway_listener(kafka_server_factory, network: PodNetwork) -> None:
    broker = kafka_server_factory(pod_gateway=network.gateway)
    assert broker.pod_bootstrap == f"{network.gateway}:{broker.pod_port}"
    pod = network.add_pod(str(uuid.uuid4()))
    assert podnet.route_device(pod.ip) == network.bridge  # sealed: the pod reaches its /24 only
    topic = unique_topic()
    done = subprocess.run(
        ["ip", "netns", "exec", pod.name, sys.executable, "-c", POD_PRODUCER, broker.pod_bootstrap, topic],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    # Acknowledged: after bootstrapping the client connected to the advertised gateway address, not loopback.
    assert done.stdout.strip() == "0 [None]", done.stdout + done.stderr
    [message] = consume(broker.bootstrap, topic, 1)
    assert (message.key(), message.value()) == (b"pod", b"from the pod")
