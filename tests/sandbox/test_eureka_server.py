"""The sandbox's real Eureka server: its build, its test properties, the TCP relay, and pods reaching it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from sandbox.eureka import build
from sandbox.eureka.server import EurekaError, EurekaServer
from sandbox.kube import podnet
from sandbox.kube.podnet import PodNetwork
from sandbox.relay import TcpRelay
from tests.fixtures.ci import unavailable
from tests.helpers.eureka import instance, register

JSON = {"Accept": "application/json"}


# --- the relay ------------------------------------------------------------------------------------------


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    """A loopback server that answers each connection with what it read, once the client half-closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                received = b""
                while chunk := conn.recv(4096):
                    received += chunk
                conn.sendall(b"echo:" + received)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_relay_forwards_both_ways_and_passes_on_the_half_close() -> None:
    server, _thread = _echo_server()
    target_port = server.getsockname()[1]
    # 127.0.0.2 stands for a gateway address: another local address than the server's.
    with TcpRelay("127.0.0.2", 0, "127.0.0.1", target_port) as relay:
        assert relay.listen_port != 0
        payload = b"x" * 200_000  # more than one chunk each way
        with socket.create_connection(("127.0.0.2", relay.listen_port), timeout=5) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer == b"echo:" + payload
    server.close()
    # Stopped: nothing listens there any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", relay.listen_port), timeout=2)


def test_relay_closes_a_connection_whose_target_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with TcpRelay("127.0.0.2", 0, "127.0.0.1", dead_port) as relay:
            with socket.create_connection(("127.0.0.2", relay.listen_port), timeout=5) as conn:
                conn.settimeout(5)
                assert conn.recv(10) == b""


def test_relay_binds_an_address_that_does_not_exist_yet() -> None:
    # IP_FREEBIND: under `make run` the relay starts before the control plane brings its bridge up.
    # 10.0.250.0/24 never belongs to a bridge (indexes stop at 200), so this address is on no interface.
    with TcpRelay("10.0.250.1", 0, "127.0.0.1", 9) as relay:
        assert relay.address.startswith("10.0.250.1:")


# --- the build --------------------------------------------------------------------------------------------


def test_the_jar_is_keyed_by_the_sources(monkeypatch, tmp_path: Path) -> None:
    sources = tmp_path / "server"
    sources.mkdir()
    (sources / "pom.xml").write_text("<project/>")
    monkeypatch.setattr(build, "SOURCES", sources)
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "cache"))
    first = build.jar_path()
    assert first.parent.parent == tmp_path / "cache" / "eureka"
    (sources / "target").mkdir()
    (sources / "target" / "junk").write_text("build output is not a source")
    assert build.jar_path() == first
    (sources / "pom.xml").write_text("<project><!-- edited --></project>")
    assert build.jar_path() != first
    assert not build.jar_ready()


def test_a_current_jar_is_reused_without_running_maven(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "")  # no mvn, no java: reaching them would fail
    jar = build.jar_path()
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"PK")
    said: list[str] = []
    assert build.ensure_jar(progress=said.append) == jar
    assert said == [f"[eureka] {jar} is current"]


def test_a_failed_build_says_why_and_what_to_do(monkeypatch, tmp_path: Path) -> None:
    if subprocess.run(["which", "mvn"], capture_output=True).returncode != 0:
        unavailable("mvn not installed (apt-get install maven)")
    sources = tmp_path / "server"
    sources.mkdir()
    (sources / "pom.xml").write_text("<project><modelVersion>4.0.0</modelVersion>")  # not even XML
    monkeypatch.setattr(build, "SOURCES", sources)
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "cache"))
    lines: list[str] = []
    with pytest.raises(build.BuildError) as failed:
        build.ensure_jar(progress=lines.append)
    message = str(failed.value)
    assert "mvn failed with exit code" in message
    assert "[ERROR]" in message  # Maven's own words about the cause
    assert "make eureka-server" in message
    assert any(line.startswith("[eureka] $ mvn") for line in lines)  # the progress was shown
    assert not build.jar_ready()
    assert not list((tmp_path / "cache" / "eureka").glob(".building-*"))  # no half-built leftovers


def test_a_missing_jar_names_the_command_that_builds_it(tmp_path: Path) -> None:
    server = EurekaServer(tmp_path, jar=tmp_path / "missing.jar")
    with pytest.raises(EurekaError, match="make eureka-server"):
        server.start()
    assert server.process is None


# --- the server ---------------------------------------------------------------------------------------


def test_the_server_runs_with_the_test_properties(eureka_server: EurekaServer, unique_app: str) -> None:
    url = eureka_server.eureka_url
    assert url.startswith("http://127.0.0.1:")
    assert requests.get(f"{url}apps", headers=JSON, timeout=10).status_code == 200
    instance_id = register(url, unique_app, "10.0.1.7")
    # The read-only response cache is off: the application's list shows a status change at once
    # (with it on, /apps/{APP} says UP for up to 30 s more).
    change = requests.put(
        f"{url}apps/{unique_app}/{instance_id}/status", params={"value": "OUT_OF_SERVICE"}, timeout=10
    )
    assert change.status_code == 200
    listed = requests.get(f"{url}apps/{unique_app}", headers=JSON, timeout=10).json()["application"]
    assert [i["status"] for i in listed["instance"]] == ["OUT_OF_SERVICE"]
    assert requests.delete(f"{url}apps/{unique_app}/{instance_id}", timeout=10).status_code == 200
    assert requests.get(f"{url}apps/{unique_app}", headers=JSON, timeout=10).status_code == 404
    # Hostname localhost with defaultZone at itself: no replication to a phantom peer.
    log = eureka_server.log_file.read_text(errors="replace")
    assert "Started EurekaServerApp" in log
    assert "The replication of task" not in log and "Not Found (Cancel)" not in log


def test_the_server_listens_on_loopback_only(eureka_server: EurekaServer) -> None:
    # The JVM's own sockets only: a relay to the pods' gateway (another test's) may share the port number.
    listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
    jvm = f"pid={eureka_server.process.pid},"
    ours = [line.split()[3] for line in listening.splitlines() if jvm in line]
    # Java's IPv4 socket shows as an IPv4-mapped IPv6 address.
    assert ours and all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in ours), ours


# --- pods reach it through their gateway -----------------------------------------------------------------


@pytest.fixture
def network():
    supported, reason = podnet.pods_supported()
    if not supported:
        unavailable(f"real pods unsupported here: {reason}")
    net = PodNetwork.claim(preferred=160)
    net.setup()
    try:
        yield net
    finally:
        net.teardown()


POD_CLIENT = """
import json, sys, urllib.request
base, app, ip = sys.argv[1:4]
center = {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
body = {"instance": {"instanceId": ip + ":pod:8080", "hostName": ip, "app": app, "ipAddr": ip,
        "vipAddress": "pod", "status": "UP", "port": {"$": 8080, "@enabled": "true"},
        "dataCenterInfo": center}}
request = urllib.request.Request(base + "apps/" + app, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
print(urllib.request.urlopen(request, timeout=10).status)
"""


def test_a_pod_registers_through_the_gateway_relay(
    eureka_server: EurekaServer, network: PodNetwork, unique_app: str
) -> None:
    pod = network.add_pod(str(uuid.uuid4()))
    # Sealed first: the pod reaches its /24 only, and the gateway is in it.
    assert podnet.route_device(pod.ip) == network.bridge
    pod_url = eureka_server.pod_url(network.gateway)
    assert pod_url == f"http://{network.gateway}:{eureka_server.port}/eureka/"
    assert eureka_server.pod_url(network.gateway) == pod_url  # one relay per gateway
    done = subprocess.run(
        ["ip", "netns", "exec", pod.name, sys.executable, "-c", POD_CLIENT, pod_url, unique_app, pod.ip],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "204"
    seen = instance(eureka_server.eureka_url, unique_app, f"{pod.ip}:pod:8080")
    assert seen is not None and seen["ipAddr"] == pod.ip and seen["status"] == "UP"
    # The loopback server itself stays out of the pod's reach: only the relayed port answers there.
    direct = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            pod.name,
            sys.executable,
            "-c",
            f"import socket; socket.create_connection(('127.0.0.1', {eureka_server.port}), timeout=3)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert direct.returncode != 0
