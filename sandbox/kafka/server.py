"""Run the sandbox's real Kafka broker (jars resolved by build.py) on loopback for `make run` and the tests.

One JVM in KRaft combined mode (broker and controller, node 1) with the properties the integrations
reference measured (section B): listeners on free loopback ports, replication 1, topics created on first
use with ``num.partitions`` partitions (3 by default, so a test that relies on one partition's order must
key its records), no initial rebalance delay, ``-Xms128m -Xmx512m``. :meth:`KafkaServer.start` formats the
log directory with ``kafka.tools.StorageTool`` when it is not formatted yet (a fresh instance), then waits
until an admin metadata call answers; :meth:`KafkaServer.restart` reuses the log directory and the ports.

Pods cannot reach loopback, and a relay is not enough for Kafka: after bootstrapping, a client connects to
the address the broker *advertises*. So with ``pod_gateway`` (a bridge's ``10.0.N.1``) the broker gets a
third listener ``PODS`` bound on that address and advertised as it (:attr:`KafkaServer.pod_bootstrap`).
"""

from __future__ import annotations

import logging
import socket
import subprocess
from pathlib import Path

from sandbox.kafka.build import HOW_TO_BUILD, classpath, libs_dir, libs_ready
from sandbox.maven import find_java
from sandbox.procs import ReadyServer, free_port, port_open, stop

READY_TIMEOUT_SECONDS = 180.0  # 8.6 s measured on an idle machine; the suite's start shares 2 cores
FORMAT_TIMEOUT_SECONDS = 120.0  # 4.5 s measured (two JVM starts)
STOP_TIMEOUT_SECONDS = 30.0  # a clean stop took 4 s; a SIGKILLed broker recovers its logs at the next start
HEAP = ["-Xms128m", "-Xmx512m"]
NODE_ID = 1

# librdkafka logs every refused connection while the broker starts; the readiness probe expects those.
_quiet = logging.getLogger("sandbox.kafka.probe")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class KafkaError(RuntimeError):
    pass


def broker_properties(
    *,
    log_dir: Path,
    port: int,
    controller_port: int,
    partitions: int = 3,
    pod_gateway: str = "",
    pod_port: int = 0,
) -> dict[str, str]:
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{controller_port}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if pod_gateway:
        listeners.append(f"PODS://{pod_gateway}:{pod_port}")
        advertised.append(f"PODS://{pod_gateway}:{pod_port}")
        protocols.append("PODS:PLAINTEXT")
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(protocols),
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(partitions),
        "auto.create.topics.enable": "true",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # One partition instead of 50: the first consumer group would otherwise wait for 50 to be created.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }


def _address_bindable(host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
        return True


class KafkaServer(ReadyServer):
    """A Kafka broker on ``127.0.0.1:<port>`` (free ports unless given), its log directory and log under
    ``root``. ``start()`` returns :attr:`bootstrap` once the broker answers a metadata request."""

    what = "the Kafka broker"
    error = KafkaError
    ready_timeout = READY_TIMEOUT_SECONDS

    def __init__(
        self,
        root: Path | str,
        *,
        port: int = 0,
        controller_port: int = 0,
        partitions: int = 3,
        pod_gateway: str = "",
        pod_port: int = 0,
        libs: Path | str | None = None,
        properties: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self.pod_gateway = pod_gateway
        self.pod_port = pod_port
        self.libs = Path(libs) if libs else None
        self.properties = dict(properties or {})

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` for clients on this machine."""
        return f"127.0.0.1:{self.port}"

    @property
    def pod_bootstrap(self) -> str:
        """``bootstrap.servers`` for pods behind :attr:`pod_gateway` (started with ``pod_gateway`` only)."""
        if not self.pod_gateway:
            raise KafkaError("this broker has no pods' listener: start it with pod_gateway=10.0.N.1")
        return f"{self.pod_gateway}:{self.pod_port}"

    @property
    def log_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "kafka.log"

    @property
    def properties_file(self) -> Path:
        return self.root / "server.properties"

    @property
    def formatted(self) -> bool:
        return (self.log_dir / "meta.properties").is_file()

    def ready(self) -> bool:
        if not port_open(self.port):  # no client (and none of its connection errors) before the port opens
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _quiet})
        try:
            metadata = admin.list_topics(timeout=2)
        except KafkaException:
            return False
        return NODE_ID in metadata.brokers

    def start(self, *, wait: bool = True) -> str:
        """Format the log directory if it is new, spawn the broker and (``wait``) wait until it answers.
        Without waiting, call :meth:`wait_ready` later, from any thread: the process must be spawned by a
        thread that lives as long as it should (the kernel's parent-death signal follows the spawning
        thread, not the process)."""
        libs = self.libs or libs_dir()
        if not libs.is_dir() or (self.libs is None and not libs_ready()):
            raise KafkaError(f"Kafka is not built ({libs} is missing); {HOW_TO_BUILD}")
        java = find_java()
        if java is None:
            raise KafkaError("java not found: apt-get install openjdk-17-jdk-headless")
        if self.pod_gateway and not _address_bindable(self.pod_gateway):
            raise KafkaError(
                f"the pods' gateway {self.pod_gateway} is on no interface here (is the pod bridge up?)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        while self.pod_gateway and self.pod_port in (0, self.port, self.controller_port):
            # Not the loopback port's number (as Eureka's relay does): Kafka refuses two IPv4 listeners on
            # one port even on different addresses.
            self.pod_port = free_port(self.pod_gateway)
        properties = {
            **broker_properties(
                log_dir=self.log_dir,
                port=self.port,
                controller_port=self.controller_port,
                partitions=self.partitions,
                pod_gateway=self.pod_gateway,
                pod_port=self.pod_port,
            ),
            **self.properties,
        }
        self.properties_file.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        cp = classpath(libs)
        if not self.formatted:
            self._format(java, cp)
        args = [java, *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true", "-cp", cp, "kafka.Kafka"]
        args.append(str(self.properties_file))
        self.launch(args, log=self.log_file, cwd=self.root, wait=wait)
        return self.bootstrap

    def _format(self, java: str, cp: str) -> None:
        tool = [java, "-Xmx256m", "-cp", cp, "kafka.tools.StorageTool"]
        cluster_id = self._tool([*tool, "random-uuid"]).strip().splitlines()[-1]
        self._tool([*tool, "format", "-t", cluster_id, "-c", str(self.properties_file)])

    def _tool(self, args: list[str]) -> str:
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise KafkaError(f"{' '.join(args[-3:])} did not finish within {exc.timeout:.0f}s") from exc
        with self.log_file.open("a") as log:
            log.write(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise KafkaError(
                f"formatting the log directory failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done.stdout

    def wait_ready(self) -> str:
        """Wait for a broker started with ``wait=False``; KafkaError (and stopped) when it never answers."""
        self.await_ready(self.log_file)
        return self.bootstrap

    def restart(self, *, wait: bool = True) -> str:
        """Stop and start again on the same log directory (not formatted again) and the same ports."""
        self.stop()
        return self.start(wait=wait)

    def stop(self) -> None:
        """Stop the broker by its pid: SIGTERM (a controlled shutdown), SIGKILL after 30 s."""
        if self.process is None:
            return
        stop(self.process, timeout=STOP_TIMEOUT_SECONDS)
        self.process = None
