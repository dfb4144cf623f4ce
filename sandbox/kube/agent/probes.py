"""Startup, readiness and liveness probes with the kubelet's timing and thresholds.

Probes reach only the pod's own IP (or loopback): a probe naming another host fails without sending
anything, so no probe can take traffic off the machine.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_PERIOD = 10
DEFAULT_TIMEOUT = 1
DEFAULT_FAILURE_THRESHOLD = 3


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


def resolve_port(port, container: dict) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not a declared container port")


def _target_allowed(host: str, pod_ip: str) -> bool:
    try:
        return host == pod_ip or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def http_get(spec: dict, container: dict, pod_ip: str, timeout: float) -> ProbeResult:
    host = spec.get("host") or pod_ip
    if not _target_allowed(host, pod_ip):
        return ProbeResult(False, f"probe host {host} is outside the sandbox pod network")
    try:
        port = resolve_port(spec.get("port"), container)
    except ValueError as exc:
        return ProbeResult(False, str(exc))
    path = spec.get("path") or "/"
    headers = {"User-Agent": "kube-probe/1.34", "Accept": "*/*"}
    for header in spec.get("httpHeaders") or []:
        headers[header["name"]] = header["value"]
    if (spec.get("scheme") or "HTTP").upper() == "HTTPS":
        context = ssl._create_unverified_context()  # noqa: S323 - the kubelet does not verify probes either
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read(10 * 1024)
    except TimeoutError:
        # The kubelet's words, which people search for.
        return ProbeResult(
            False,
            f'Get "http://{host}:{port}{path}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)",
        )
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f'Get "http://{host}:{port}{path}": {exc}')
    finally:
        conn.close()
    # Redirects are not followed: the kubelet counts a redirect to another host as success too.
    if 200 <= response.status < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {response.status} {body[:200]!r}")


def tcp_socket(spec: dict, container: dict, pod_ip: str, timeout: float) -> ProbeResult:
    host = spec.get("host") or pod_ip
    if not _target_allowed(host, pod_ip):
        return ProbeResult(False, f"probe host {host} is outside the sandbox pod network")
    try:
        port = resolve_port(spec.get("port"), container)
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True)
    except (OSError, ValueError) as exc:
        return ProbeResult(False, f"dial tcp {host}:{spec.get('port')}: {exc}")


def run_exec(argv: list[str], timeout: float) -> ProbeResult:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"command timed out after {timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, str(exc))
    if proc.returncode == 0:
        return ProbeResult(True)
    output = (proc.stdout + proc.stderr).decode(errors="replace").strip()[-300:]
    return ProbeResult(False, f"command exited with {proc.returncode}: {output}")


@dataclass
class Prober:
    """One probe of one container run: call :meth:`due` / :meth:`run` from the pod's loop."""

    kind: str  # startup | readiness | liveness
    spec: dict
    container: dict
    pod_ip: str
    enter: Callable[[list[str]], list[str]]  # host argv running a command inside the container
    started_at: float
    successes: int = 0
    failures: int = 0
    last: ProbeResult | None = None
    next_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.spec.get("initialDelaySeconds") or 0)

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or DEFAULT_PERIOD)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT)

    @property
    def success_threshold(self) -> int:
        return int(self.spec.get("successThreshold") or 1)

    @property
    def failure_threshold(self) -> int:
        return int(self.spec.get("failureThreshold") or DEFAULT_FAILURE_THRESHOLD)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def probe_once(self) -> ProbeResult:
        if self.spec.get("exec"):
            return run_exec(self.enter(list(self.spec["exec"].get("command") or [])), self.timeout)
        if self.spec.get("httpGet"):
            return http_get(self.spec["httpGet"], self.container, self.pod_ip, self.timeout)
        if self.spec.get("tcpSocket"):
            return tcp_socket(self.spec["tcpSocket"], self.container, self.pod_ip, self.timeout)
        return ProbeResult(False, "unsupported probe handler (grpc probes are not simulated)")

    def run(self, now: float) -> bool | None:
        """Probe once; True/False when the thresholds flip the outcome, None while undecided."""
        self.next_at = now + self.period
        self.last = self.probe_once()
        if self.last.ok:
            self.failures = 0
            self.successes += 1
            return True if self.successes >= self.success_threshold else None
        self.successes = 0
        self.failures += 1
        return False if self.failures >= self.failure_threshold else None
