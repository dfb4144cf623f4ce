"""`make run`'s Kafka: started in the background, restarted once with a listener on the pods' gateway when
the control plane is ready, its ports and data kept for the next run."""

from __future__ import annotations

import json
import threading
import time

from sandbox import services
from sandbox.kafka import libs_ready
from sandbox.procs import port_open
from tests.fixtures.ci import unavailable
from tests.helpers.kafka import consume, produce, unique_topic
from tests.polling import until

# Another loopback address stands for the bridge's 10.0.N.1: the host reaches it like the gateway.
GATEWAY = "127.0.0.2"


def _pods_listener_up(kafka: services.SandboxKafka) -> bool:
    server = kafka.server
    return (
        server.pod_gateway == GATEWAY
        and server.process is not None
        and port_open(server.pod_port, GATEWAY)
        and server.ready()
    )


def _from_a_short_lived_thread(call) -> None:
    # As the control plane's callback: a thread that ends; a JVM it spawned would get SIGTERM then.
    thread = threading.Thread(target=call)
    thread.start()
    thread.join()


def test_make_runs_kafka_gets_a_pods_listener_and_keeps_its_ports_and_data(tmp_path, capsys) -> None:
    if not libs_ready():
        unavailable("Kafka is not built (make kafka-server)")
    root = tmp_path / "kafka"
    kafka = services.SandboxKafka(root)
    assert kafka.start() is not None
    bootstrap = kafka.bootstrap
    assert bootstrap.startswith("127.0.0.1:")  # known at once, for the portal's settings
    topic = unique_topic()
    try:
        until("the broker", kafka.server.ready, timeout=180)
        produce(bootstrap, topic, [(b"k", b"first run")])
        _from_a_short_lived_thread(lambda: kafka.cluster_ready(GATEWAY))
        until("the pods' listener", lambda: _pods_listener_up(kafka), timeout=180)
        time.sleep(3)  # past the callback thread's end
        assert kafka.server.process.poll() is None
        pod_bootstrap = kafka.server.pod_bootstrap
        # Clients that bootstrap on the gateway are sent to the gateway's listener and are served there.
        produce(pod_bootstrap, topic, [(b"k", b"through the pods' listener")])
        printed = capsys.readouterr().out
        assert f"Sandbox: Kafka {bootstrap} (log {kafka.server.log_file})" in printed
        assert f"Sandbox: Kafka for pods (bootstrap servers): {pod_bootstrap}" in printed
        saved = json.loads((root / "ports.json").read_text())
        assert saved == {
            "port": kafka.server.port,
            "controller_port": kafka.server.controller_port,
            "pod_port": kafka.server.pod_port,
        }
    finally:
        kafka.stop()
    assert kafka.server.process is None

    # The next run: the same addresses and the same data (not formatted again); the gateway known early.
    again = services.SandboxKafka(root)
    again.cluster_ready(GATEWAY)
    assert again.start() is not None
    try:
        until("the pods' listener", lambda: _pods_listener_up(again), timeout=180)
        assert again.bootstrap == bootstrap and again.server.pod_bootstrap == pod_bootstrap
        values = [m.value() for m in consume(bootstrap, topic, 2)]
        assert values == [b"first run", b"through the pods' listener"]
        assert (root / "kafka.log").read_text(errors="replace").count("kafka.tools.StorageTool format") == 1
    finally:
        again.stop()


def test_without_the_jars_make_run_goes_on_without_kafka(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "empty-cache"))  # a machine that never built it
    kafka = services.SandboxKafka(tmp_path / "kafka")
    assert kafka.start() is None
    assert "make kafka-server" in capsys.readouterr().out
    kafka.cluster_ready("10.0.1.1")  # nothing to restart, nothing fails
    kafka.stop()
    assert kafka.bootstrap == ""
