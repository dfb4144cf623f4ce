"""The ``metrics.k8s.io/v1beta1`` API for the sandbox's nodes, served from real cgroup usage.

In a real cluster metrics-server scrapes every kubelet's resource metrics and the apiserver's aggregation
layer proxies ``/apis/metrics.k8s.io/...`` to it. Here the pod agent is the kubelet, so it answers the
aggregated API itself: one small HTTPS server on 127.0.0.1, registered with an ``APIService`` whose
Service is ``type: ExternalName, externalName: localhost`` (the apiserver refuses loopback Endpoints, but
it resolves an ExternalName Service to ``https://<externalName>:<port>`` without any Endpoints).

What it serves, as the HPA controller and ``kubectl top`` read it:

- ``/apis/metrics.k8s.io/v1beta1`` (APIResourceList: pods, nodes) and ``/apis`` (APIGroupList), which the
  aggregator's availability check and discovery fetch; ``/openapi/v2`` and ``/openapi/v3`` (empty
  documents), which its OpenAPI controller downloads and, on a 404, retries with an error in the log.
- ``.../pods`` (all namespaces), ``.../namespaces/<ns>/pods`` and ``.../namespaces/<ns>/pods/<name>``,
  with ``labelSelector`` (``a=b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``: what the HPA
  sends for a Deployment's selector) and ``fieldSelector`` on ``metadata.name``/``metadata.namespace``.
- ``.../nodes`` and ``.../nodes/<name>``: the sum of the node's pods.

CPU is a rate: ``sample()`` returns cumulative cpu nanoseconds per container; every ``interval`` seconds
the server samples and reports ``(cpu_ns now - cpu_ns before) / elapsed`` in nanocores (``"123456n"``),
with ``timestamp`` the last sample and ``window`` the elapsed time, as metrics-server does. Memory is the
last working set (usage minus inactive file cache) in ``Ki``. A pod appears once it has two samples; a
container whose counter went backwards (it restarted) hides its pod until the next sample.

Authentication is what an aggregated apiserver does with ``--requestheader-*``: the aggregator connects
with the front-proxy client certificate (CN ``front-proxy-client``, signed by the request-header client CA,
``ca.crt`` in LocalCluster's pki), anything else gets 401. The apiserver has already authenticated and
authorized the user it names in ``X-Remote-User``; that header is only logged.

Usage from the pod agent (it owns the containers, so it builds ``sample``; ``Agent.pod_samples()`` on
the wt-podnet branch returns exactly these fields as dicts, one entry per pod with running containers)::

    from sandbox.kube.agent.metrics_api import ContainerSample, MetricsServer, PodSample, register_metrics_api

    def sample() -> list[PodSample]:  # runs on the server's sampling thread: take a snapshot
        return [
            PodSample(
                namespace=pod["namespace"],
                name=pod["name"],
                labels=pod["labels"],
                node=pod["node"],
                containers=[ContainerSample(**container) for container in pod["containers"]],
            )
            for pod in agent.pod_samples()
        ]

    server = MetricsServer(pki_dir=workdir / "pki", sample=sample, nodes=node_names)
    port = server.start()
    register_metrics_api(api_client, port=port, ca_bundle=(workdir / "pki" / "ca.crt").read_bytes())
    ...  # on shutdown:
    server.stop()

The registration outlives the agent in etcd; LocalCluster drops a kept one when it resumes, and a new
agent's ``register_metrics_api`` replaces the port. ``metrics_api_available(api_client)`` tells when the
aggregator has checked the server (about a second).

``pki_dir`` must hold ``ca.crt`` (the request-header client CA) and ``metrics-server.crt``/``.key``, which
LocalCluster issues (SANs ``localhost``, ``127.0.0.1`` and ``metrics-server.kube-system.svc``, the name the
aggregator checks).
"""

from __future__ import annotations

import datetime
import http.server
import json
import logging
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
APISERVICE_NAME = f"{VERSION}.{GROUP}"
SERVICE_NAME = "metrics-server"
SERVICE_NAMESPACE = "kube-system"
FRONT_PROXY_NAMES = ("front-proxy-client",)
SERVING_CERT = "metrics-server"
# The aggregator verifies the serving certificate against this name, whatever host it connects to.
SERVING_NAMES = (
    "localhost",
    f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc",
    f"{SERVICE_NAME}.{SERVICE_NAMESPACE}",
)
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0  # the aggregator keeps its connections open between requests


@dataclass(frozen=True)
class ContainerSample:
    name: str
    cpu_ns: int  # cumulative, as cpuacct.usage
    memory_bytes: int  # working set: memory.usage_in_bytes - total_inactive_file


@dataclass(frozen=True)
class PodSample:
    namespace: str
    name: str
    labels: dict[str, str]
    node: str
    containers: list[ContainerSample]


# ---------------------------------------------------------------------------------------------------------
# Label selectors, in the string form a client (the HPA, kubectl) puts into ?labelSelector=


class SelectorError(ValueError):
    pass


_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[A-Za-z0-9][-A-Za-z0-9_./]*)")


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SelectorError(f"unexpected {text[pos:]!r} in label selector")
        tokens.append(match.group(1))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


_PUNCTUATION = frozenset(("(", ")", ",", "!", "=", "==", "!="))
Requirement = Callable[[dict[str, str]], bool]


def parse_label_selector(text: str) -> list[Requirement]:
    """Requirements that must all hold, from ``a=b,c!=d,e in (f,g),h notin (i),j,!k``."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise SelectorError(f"label selector {text!r} ends too early")
        i += 1
        return tokens[i - 1]

    def values() -> frozenset[str]:
        if take() != "(":
            raise SelectorError(f"expected '(' in label selector {text!r}")
        found: set[str] = set()
        while True:
            word = take()
            if word in _PUNCTUATION:  # also "()": in and notin need at least one value
                raise SelectorError(f"expected a value in label selector {text!r}")
            found.add(word)
            word = take()
            if word == ")":
                return frozenset(found)
            if word != ",":
                raise SelectorError(f"expected ',' or ')' in label selector {text!r}")

    def optional_value() -> str:  # "a=" selects an empty value
        nonlocal i
        if i >= len(tokens) or tokens[i] == ",":
            return ""
        word = take()
        if word in _PUNCTUATION:
            raise SelectorError(f"expected a value in label selector {text!r}")
        return word

    while i < len(tokens):
        word = take()
        if word == "!":
            key = take()
            if key in _PUNCTUATION:
                raise SelectorError(f"expected a label key in label selector {text!r}")
            requirements.append(lambda labels, key=key: key not in labels)
        else:
            key = word
            if key in _PUNCTUATION:
                raise SelectorError(f"expected a label key in label selector {text!r}")
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                requirements.append(lambda labels, key=key: key in labels)
            elif op in ("=", "=="):
                i += 1
                value = optional_value()
                requirements.append(lambda labels, key=key, value=value: labels.get(key) == value)
            elif op == "!=":
                i += 1
                value = optional_value()
                requirements.append(lambda labels, key=key, value=value: labels.get(key) != value)
            elif op == "in":
                i += 1
                allowed = values()
                requirements.append(lambda labels, key=key, allowed=allowed: labels.get(key) in allowed)
            elif op == "notin":
                i += 1
                denied = values()
                requirements.append(lambda labels, key=key, denied=denied: labels.get(key) not in denied)
            else:
                raise SelectorError(f"unexpected {op!r} after {key!r} in label selector")
        if i < len(tokens) and take() != ",":
            raise SelectorError(f"expected ',' in label selector {text!r}")
    return requirements


def _field_selector(text: str) -> list[Callable[[PodSample], bool]]:
    checks = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(metadata\.name|metadata\.namespace)\s*(!=|==|=)\s*(\S*)", part)
        if not match:
            raise SelectorError(
                f"field selector {part!r} is not supported (metadata.name, metadata.namespace)"
            )
        attr = match[1].split(".")[1]
        expected, negate = match[3], match[2] == "!="
        checks.append(
            lambda pod, attr=attr, expected=expected, negate=negate: (getattr(pod, attr) == expected)
            != negate
        )
    return checks


# ---------------------------------------------------------------------------------------------------------
# Usage over the last window


@dataclass(frozen=True)
class _Usage:
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True)
class _PodUsage:
    pod: PodSample
    timestamp: float  # wall clock of the last sample
    window: float  # seconds between the two samples the rate comes from
    containers: list[tuple[str, _Usage]]


def _usage_between(before: PodSample, now: PodSample, elapsed: float) -> list[tuple[str, _Usage]] | None:
    previous = {c.name: c.cpu_ns for c in before.containers}
    usage = []
    for container in now.containers:
        if container.name not in previous or container.cpu_ns < previous[container.name]:
            return None  # a new or restarted container: no rate until it has two samples of its own
        rate = (container.cpu_ns - previous[container.name]) / elapsed
        usage.append((container.name, _Usage(round(rate), max(container.memory_bytes, 0))))
    return usage


def _rfc3339(wall: float) -> str:
    return datetime.datetime.fromtimestamp(int(wall), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantities(usage: _Usage) -> dict[str, str]:
    return {"cpu": f"{usage.cpu_nanocores}n", "memory": f"{usage.memory_bytes // 1024}Ki"}


class MetricsServer:
    """HTTPS ``metrics.k8s.io/v1beta1`` on 127.0.0.1 with the usage of ``sample()``'s pods (module docs)."""

    def __init__(
        self,
        *,
        pki_dir: Path,
        sample: Callable[[], list[PodSample]],
        nodes: Sequence[str],
        interval: float = 5.0,
    ) -> None:
        self.pki_dir = Path(pki_dir)
        self.sample = sample
        self.nodes = tuple(nodes)
        self.interval = interval
        self.port: int | None = None
        self._lock = threading.Lock()
        self._last: dict[
            tuple[str, str], tuple[float, float, PodSample]
        ] = {}  # key -> (monotonic, wall, pod)
        self._current: dict[tuple[str, str], _PodUsage] = {}
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.pki_dir / f"{SERVING_CERT}.crt", self.pki_dir / f"{SERVING_CERT}.key")
        context.load_verify_locations(cafile=self.pki_dir / "ca.crt")
        # Optional, not required: a client without the front-proxy certificate gets a 401, not a reset.
        context.verify_mode = ssl.CERT_OPTIONAL
        self._stopping.clear()
        self._sample_once()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, context=context, metrics=self)
        self.port = self._httpd.server_address[1]
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, name="metrics-api", daemon=True),
            threading.Thread(target=self._sample_loop, name="metrics-sampler", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("metrics.k8s.io served on 127.0.0.1:%s", self.port)
        return self.port

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for thread in self._threads:
            thread.join(timeout=self.interval + 5)
        self._threads = []

    # -- sampling ---------------------------------------------------------------------------------------

    def _sample_loop(self) -> None:
        while not self._stopping.wait(self.interval):
            self._sample_once()

    def _sample_once(self) -> None:
        try:
            pods = self.sample()
        except Exception:  # one failed sample must not end the sampling thread
            log.exception("metrics sample failed")
            return
        mono, wall = time.monotonic(), time.time()
        last, current = {}, {}
        for pod in pods:
            key = (pod.namespace, pod.name)
            last[key] = (mono, wall, pod)
            if key in self._last:
                before_mono, _, before = self._last[key]
                elapsed = mono - before_mono
                usage = _usage_between(before, pod, elapsed) if elapsed > 0 else None
                if usage is not None:
                    current[key] = _PodUsage(pod, wall, elapsed, usage)
        with self._lock:
            self._last, self._current = last, current

    def snapshot(self) -> list[_PodUsage]:
        with self._lock:
            return list(self._current.values())

    # -- API objects ------------------------------------------------------------------------------------

    @staticmethod
    def pod_metrics(usage: _PodUsage) -> dict:
        pod = usage.pod
        return {
            "kind": "PodMetrics",
            "apiVersion": GROUP_VERSION,
            "metadata": {
                "name": pod.name,
                "namespace": pod.namespace,
                "labels": dict(pod.labels),
                "creationTimestamp": _rfc3339(time.time()),
            },
            "timestamp": _rfc3339(usage.timestamp),
            "window": f"{usage.window:.3f}s",
            "containers": [{"name": name, "usage": _quantities(u)} for name, u in usage.containers],
        }

    def node_metrics(self, node: str, pods: list[_PodUsage]) -> dict:
        mine = [p for p in pods if p.pod.node == node]
        total = _Usage(
            sum(u.cpu_nanocores for p in mine for _, u in p.containers),
            sum(u.memory_bytes for p in mine for _, u in p.containers),
        )
        stamp = max((p.timestamp for p in mine), default=time.time())
        window = max((p.window for p in mine), default=self.interval)
        return {
            "kind": "NodeMetrics",
            "apiVersion": GROUP_VERSION,
            "metadata": {"name": node, "labels": {}, "creationTimestamp": _rfc3339(time.time())},
            "timestamp": _rfc3339(stamp),
            "window": f"{window:.3f}s",
            "usage": _quantities(total),
        }


# ---------------------------------------------------------------------------------------------------------
# HTTP


_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {
            "name": "nodes",
            "singularName": "",
            "namespaced": False,
            "kind": "NodeMetrics",
            "verbs": ["get", "list"],
        },
        {
            "name": "pods",
            "singularName": "",
            "namespaced": True,
            "kind": "PodMetrics",
            "verbs": ["get", "list"],
        },
    ],
}
_GROUPS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {
            "name": GROUP,
            "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
            "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
        }
    ],
}
_PREFIX = f"/apis/{GROUP_VERSION}"
# No schemas: nothing here is created or validated, and metrics clients do not read the OpenAPI.
_OPENAPI_V2 = {"swagger": "2.0", "info": {"title": "sandbox metrics", "version": VERSION}, "paths": {}}
_OPENAPI_V3 = {"openapi": "3.0.0", "info": {"title": "sandbox metrics", "version": VERSION}, "paths": {}}
_ROUTES = [
    (re.compile(rf"^{_PREFIX}/pods$"), "pods"),
    (re.compile(rf"^{_PREFIX}/namespaces/(?P<namespace>[^/]+)/pods$"), "pods"),
    (re.compile(rf"^{_PREFIX}/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)$"), "pod"),
    (re.compile(rf"^{_PREFIX}/nodes$"), "nodes"),
    (re.compile(rf"^{_PREFIX}/nodes/(?P<name>[^/]+)$"), "node"),
]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, *, context: ssl.SSLContext, metrics: MetricsServer) -> None:
        self.context = context
        self.metrics = metrics
        super().__init__(address, handler)

    def finish_request(self, request: socket.socket, client_address) -> None:
        # The TLS handshake happens here, on the request's own thread, so a slow client cannot stall accept().
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        tls.settimeout(IDLE_TIMEOUT)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s %s (user %s)", self.address_string(), format % args, self.headers.get("X-Remote-User"))

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        self._send(code, {**body, "message": message, "reason": reason, "code": code})

    def _front_proxy(self) -> bool:
        cert = self.connection.getpeercert()  # validated against the CA, or None
        if not cert:
            return False
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
        return any(name in FRONT_PROXY_NAMES for name in names)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if not self._front_proxy():
            self._status(401, "Unauthorized", "a front-proxy client certificate is required")
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        path = url.path.rstrip("/")
        if path == "/apis":
            self._send(200, _GROUPS)
        elif path == f"/apis/{GROUP}":
            self._send(200, _GROUPS["groups"][0] | {"kind": "APIGroup", "apiVersion": "v1"})
        elif path == _PREFIX:
            self._send(200, _RESOURCES)
        elif path == "/openapi/v2":
            self._send(200, _OPENAPI_V2)
        elif path == "/openapi/v3":
            self._send(
                200, {"paths": {f"apis/{GROUP_VERSION}": {"serverRelativeURL": f"/openapi/v3{_PREFIX}"}}}
            )
        elif path == f"/openapi/v3{_PREFIX}":
            self._send(200, _OPENAPI_V3)
        else:
            for pattern, kind in _ROUTES:
                match = pattern.match(path)
                if match:
                    try:
                        self._metrics(kind, match.groupdict(), query)
                    except SelectorError as exc:
                        self._status(400, "BadRequest", str(exc))
                    return
            self._status(404, "NotFound", f"{url.path} is not served here")

    def _metrics(self, kind: str, args: dict[str, str], query: dict[str, list[str]]) -> None:
        metrics = self.server.metrics
        pods = metrics.snapshot()
        if kind == "pods":
            selector = parse_label_selector(query.get("labelSelector", [""])[0])
            fields = _field_selector(query.get("fieldSelector", [""])[0])
            namespace = args.get("namespace")
            items = [
                metrics.pod_metrics(p)
                for p in sorted(pods, key=lambda p: (p.pod.namespace, p.pod.name))
                if (namespace is None or p.pod.namespace == namespace)
                and all(requirement(p.pod.labels) for requirement in selector)
                and all(check(p.pod) for check in fields)
            ]
            self._send(
                200, {"kind": "PodMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
            )
        elif kind == "pod":
            found = [p for p in pods if (p.pod.namespace, p.pod.name) == (args["namespace"], args["name"])]
            if found:
                self._send(200, metrics.pod_metrics(found[0]))
            else:
                self._status(404, "NotFound", f'podmetrics.metrics.k8s.io "{args["name"]}" not found')
        elif kind == "nodes":
            selector = parse_label_selector(query.get("labelSelector", [""])[0])
            items = [metrics.node_metrics(n, pods) for n in metrics.nodes if all(r({}) for r in selector)]
            self._send(
                200, {"kind": "NodeMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
            )
        elif args["name"] in metrics.nodes:
            self._send(200, metrics.node_metrics(args["name"], pods))
        else:
            self._status(404, "NotFound", f'nodemetrics.metrics.k8s.io "{args["name"]}" not found')


# ---------------------------------------------------------------------------------------------------------
# Registration


def register_metrics_api(api_client, *, port: int, ca_bundle: bytes) -> None:
    """Point the apiserver's ``metrics.k8s.io/v1beta1`` at ``localhost:port`` (create or replace).

    The Service is an ExternalName: the aggregator dials ``<externalName>:<port>`` for it, while
    Endpoints/EndpointSlices with a loopback address are rejected by the apiserver.
    """
    import base64

    from kubernetes import client

    core = client.CoreV1Api(api_client)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "labels": {"app": SERVICE_NAME}},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    }
    try:
        core.create_namespaced_service(SERVICE_NAMESPACE, service)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        # A replace, not a patch: a strategic merge keeps the previous server's port beside the new one
        # (both named "https"), which the apiserver refuses.
        current = core.read_namespaced_service(SERVICE_NAME, SERVICE_NAMESPACE)
        service["metadata"]["resourceVersion"] = current.metadata.resource_version
        core.replace_namespaced_service(SERVICE_NAME, SERVICE_NAMESPACE, service)
    registration = client.ApiregistrationV1Api(api_client)
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": APISERVICE_NAME, "labels": {"app": SERVICE_NAME}},
        "spec": {
            "group": GROUP,
            "version": VERSION,
            "service": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "port": port},
            "caBundle": base64.b64encode(ca_bundle).decode(),
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    try:
        registration.create_api_service(api_service)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        registration.patch_api_service(APISERVICE_NAME, api_service)


def metrics_api_available(api_client) -> tuple[bool, str]:
    """Whether the aggregator reports the APIService Available, and its message when it does not."""
    from kubernetes import client

    try:
        found = client.ApiregistrationV1Api(api_client).read_api_service(APISERVICE_NAME)
    except client.ApiException as exc:
        if exc.status == 404:
            return False, "not registered"
        raise
    for condition in found.status.conditions or []:
        if condition.type == "Available":
            return condition.status == "True", condition.message or condition.reason or ""
    return False, "no Available condition yet"
