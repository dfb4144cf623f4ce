"""The sandbox's userspace kube-proxy for one Service: connections go to the ready endpoints the apiserver's
EndpointSlices name, round-robin, and nowhere when there are none."""

import socket
import socketserver
import threading

from sandbox.service_relay import ServiceRelay
from tests.fixtures.ci import unavailable


class _Named(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(self.server.answer)


def _server_on(host: str, answer: bytes) -> socketserver.ThreadingTCPServer:
    server = socketserver.ThreadingTCPServer((host, 0), _Named)
    server.daemon_threads = True
    server.answer = answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _read(address: str) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        return conn.recv(100)


def _slice(namespace: str, name: str, endpoints: list[tuple[str, bool]], port: int) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "logproxy"}},
        "addressType": "IPv4",
        "ports": [{"name": "redis", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, ready in endpoints],
    }


def test_connections_go_round_robin_to_the_ready_endpoints_only(kube_cluster, kube_namespace):
    from kubernetes import client

    network = kube_cluster.cluster.network
    if network is None:
        unavailable(f"no pod network here: {kube_cluster.cluster.pods_reason}")
    gateway = network.gateway
    # Servers on the gateway: an address the apiserver accepts in an EndpointSlice, unlike loopback.
    first, second = _server_on(gateway, b"first"), _server_on(gateway, b"second")
    core, discovery = (
        client.CoreV1Api(kube_cluster.api_client),
        client.DiscoveryV1Api(kube_cluster.api_client),
    )
    core.create_namespaced_service(
        kube_namespace,
        {"metadata": {"name": "logproxy"}, "spec": {"ports": [{"name": "redis", "port": 6379}]}},
    )
    relay = ServiceRelay(
        "127.0.0.1",
        0,
        api_client=kube_cluster.api_client,
        namespace=kube_namespace,
        service="logproxy",
        port="redis",
    )
    relay.start()
    try:
        assert relay.pick_target() is None  # no endpoints yet: the connection is closed, nothing sent
        with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=5) as conn:
            assert conn.recv(10) == b""
        discovery.create_namespaced_endpoint_slice(
            kube_namespace, _slice(kube_namespace, "a", [(gateway, True)], first.server_address[1])
        )
        discovery.create_namespaced_endpoint_slice(
            kube_namespace, _slice(kube_namespace, "b", [(gateway, True)], second.server_address[1])
        )
        discovery.create_namespaced_endpoint_slice(
            kube_namespace, _slice(kube_namespace, "c", [("10.0.250.9", False)], 1)
        )
        relay._read_at = 0.0  # read the slices now rather than after the refresh interval
        answers = [_read(relay.address) for _ in range(4)]
        assert sorted(answers) == [b"first", b"first", b"second", b"second"]
        assert answers[0] != answers[1]
        assert ("10.0.250.9", 1) not in relay.endpoints()
    finally:
        relay.stop()
        first.shutdown()
        second.shutdown()
