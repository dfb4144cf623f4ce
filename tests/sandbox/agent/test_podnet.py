"""The sandbox pod network: sealed before any packet, reachable from the host over the bridge only."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from sandbox.kube import podnet
from sandbox.kube.podnet import PodNetwork
from tests.fixtures.ci import unavailable

# Indexes stop at 200, so 10.0.250.0/24 never belongs to a bridge; 10.0.0.0/24 is the Service CIDR.
UNUSED_ADDRESS = "10.0.250.7"
SERVICE_ADDRESS = "10.0.0.10"


@pytest.fixture
def network() -> Iterator[PodNetwork]:
    supported, reason = podnet.pods_supported()
    if not supported:
        unavailable(f"real pods unsupported here: {reason}")
    net = PodNetwork.claim(preferred=150)
    net.setup()
    try:
        yield net
    finally:
        net.teardown()


def _listen_in(netns: str, port: int) -> subprocess.Popen:
    script = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port})); s.listen(1); print('listening', flush=True)\n"
        "c, a = s.accept(); c.sendall(('hello ' + a[0]).encode()); c.close()\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "listening"
    return proc


def test_sealed_before_traffic_then_host_reaches_pod_over_the_bridge(network: PodNetwork) -> None:
    pod = network.add_pod(str(uuid.uuid4()))

    # The sealing assertion comes first: nothing below sends a packet until it holds.
    assert podnet.route_device(pod.ip) == network.bridge
    assert podnet.route_device(UNUSED_ADDRESS) is None
    assert podnet.route_device(SERVICE_ADDRESS) is None
    blackholed = subprocess.run(["ip", "route", "get", UNUSED_ADDRESS], capture_output=True, text=True)
    assert blackholed.returncode != 0 and "eth0" not in blackholed.stdout

    listener = _listen_in(pod.name, 18080)
    try:
        with socket.create_connection((pod.ip, 18080), timeout=5) as conn:
            assert conn.recv(100).decode() == f"hello {network.gateway}"
    finally:
        listener.kill()
        listener.wait()


def test_pods_have_no_default_route(network: PodNetwork) -> None:
    pod = network.add_pod(str(uuid.uuid4()))
    routes = subprocess.run(["ip", "-n", pod.name, "route"], capture_output=True, text=True, check=True)
    assert "default" not in routes.stdout
    assert routes.stdout.split()[0] == network.cidr
    # A route lookup, not a packet: an address outside the pod's /24 has no way out.
    lookup = subprocess.run(
        ["ip", "-n", pod.name, "route", "get", "192.0.2.1"], capture_output=True, text=True
    )
    assert lookup.returncode != 0


def test_pods_get_distinct_addresses_and_removal_frees_them(network: PodNetwork) -> None:
    first, second = network.add_pod(str(uuid.uuid4())), network.add_pod(str(uuid.uuid4()))
    assert first.ip != second.ip and network.contains(first.ip) and network.contains(second.ip)
    assert first.ip != network.gateway and second.ip != network.gateway
    network.remove_pod(next(uid for uid, ip in network.pod_ips().items() if ip == first.ip))
    assert first.name not in podnet.list_netns()
    assert second.name in podnet.list_netns()


def test_two_claims_get_different_indexes(network: PodNetwork) -> None:
    other = PodNetwork.claim(preferred=network.index)
    try:
        assert other.index != network.index
        assert other.cidr != network.cidr
    finally:
        other.release()


def test_claim_cleans_what_a_killed_holder_left() -> None:
    supported, reason = podnet.pods_supported()
    if not supported:
        unavailable(f"real pods unsupported here: {reason}")
    killed = PodNetwork.claim(preferred=160)
    killed.setup()
    pod = killed.add_pod(str(uuid.uuid4()))
    sleeper = subprocess.Popen(["ip", "netns", "exec", pod.name, "sleep", "60"])
    time.sleep(0.2)
    killed.release()  # the holder dies without tearing down: only its flock goes away

    successor = PodNetwork.claim(preferred=killed.index)
    try:
        assert successor.index == killed.index
        assert pod.name not in podnet.list_netns()
        assert subprocess.run(["ip", "link", "show", killed.bridge], capture_output=True).returncode != 0
        assert sleeper.wait(timeout=5) != 0
        # With the bridge gone, its addresses fall back to the blackhole, never to eth0.
        assert podnet.route_device(pod.ip) is None
    finally:
        successor.teardown()
