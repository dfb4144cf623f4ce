"""A userspace kube-proxy for one Service of the sandbox cluster.

The sandbox runs no kube-proxy: a Service's ClusterIP routes nowhere (docs/sandbox.md, "Network"), so pods
cannot reach another workload through its Service. Where the sandbox needs that (the log proxy that the
services push to), a :class:`ServiceRelay` listens on the pods' gateway and hands each new connection to
one of the Service's ready endpoints, round-robin, as kube-proxy's userspace mode did. Endpoints are read
from the Service's EndpointSlices (the endpoint controller keeps them), at most every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

from sandbox.relay import TcpRelay

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0


class ServiceRelay(TcpRelay):
    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        *,
        api_client,
        namespace: str,
        service: str,
        port: int | str,
    ) -> None:
        super().__init__(listen_host, listen_port, "", 0)
        self.api_client = api_client  # a kubernetes.client.ApiClient for the sandbox cluster
        self.namespace, self.service, self.port = namespace, service, port
        self._endpoints: list[tuple[str, int]] = []
        self._read_at = 0.0
        self._turn = itertools.count()
        self._refresh_lock = threading.Lock()

    def endpoints(self) -> list[tuple[str, int]]:
        """The ready (address, port) pairs of the Service's port, as its EndpointSlices say now."""
        from kubernetes import client

        slices = client.DiscoveryV1Api(self.api_client).list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.service}", _request_timeout=5
        )
        found: list[tuple[str, int]] = []
        for endpoint_slice in slices.items:
            # A slice names the Service's port by name and gives the endpoints' (target) port number.
            slice_ports = endpoint_slice.ports or []
            ports = [p.port for p in slice_ports if self.port in (p.name, p.port)]
            if not ports and len(slice_ports) == 1 and isinstance(self.port, int):
                ports = [slice_ports[0].port]
            for endpoint in endpoint_slice.endpoints or []:
                conditions = endpoint.conditions
                if conditions is not None and conditions.ready is False:
                    continue
                found.extend((address, port) for address in endpoint.addresses for port in ports)
        return sorted(set(found))

    def pick_target(self) -> tuple[str, int] | None:
        with self._refresh_lock:
            if time.monotonic() - self._read_at > REFRESH_SECONDS:
                try:
                    self._endpoints = self.endpoints()
                except Exception as exc:  # the apiserver is away: keep the last known endpoints
                    logger.warning("service relay %s: endpoints not read: %s", self.address, exc)
                self._read_at = time.monotonic()
            if not self._endpoints:
                return None
            return self._endpoints[next(self._turn) % len(self._endpoints)]
