"""A throwaway Kubernetes control plane (etcd, apiserver, controller-manager, scheduler, kwok) on 127.0.0.1.

Every component runs as a plain child process in its own process group, with PR_SET_PDEATHSIG so the
kernel kills it if the launching process dies without running its teardown.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.kube import build, podnet
from sandbox.kube.agent import metrics_api
from sandbox.procs import die_with_parent, stop

DEFAULT_API_PORT = 16443
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.0.1.0/24"
STATE_FILE = "state.json"
HOW_TO_BUILD = "build them with `make cluster-binaries` (or `.venv/bin/python -m sandbox.kube build`)"
ACTIVE_PHASES = ("building", "starting", "ready")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
AGENT = "pod-agent"
POD_MODES = ("auto", "real", "simulated")


Progress = Callable[[str], None]


class ClusterError(RuntimeError):
    pass


def free_port(preferred: int | None = None) -> int:
    """Return ``preferred`` when nothing listens on it, else a kernel-chosen free port."""
    candidates = [preferred, 0] if preferred else [0]
    for candidate in candidates:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise ClusterError("no free port")


# ---------------------------------------------------------------------------------------------------------
# Certificates


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


_APISERVER_NAMES = (
    "127.0.0.1",
    "10.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# The metrics.k8s.io server (sandbox/kube/agent/metrics_api.py): the aggregator checks the Service's DNS name.
_METRICS_SERVER_NAMES = (
    "127.0.0.1",
    "localhost",
    "metrics-server.kube-system.svc",
    "metrics-server.kube-system",
)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@dataclass
class _CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, pki: Path) -> _CA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("opsportal-local-ca"))
            .issuer_name(_name("opsportal-local-ca"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(pki / "ca.key", key)
        (pki / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert)

    @classmethod
    def load(cls, pki: Path) -> _CA:
        key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
        return cls(key, x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes()))

    def issue(
        self,
        pki: Path,
        stem: str,
        subject: x509.Name,
        *,
        server: bool = False,
        names: tuple[str, ...] = _APISERVER_NAMES,
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(name) for name in names]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        key_path, cert_path = pki / f"{stem}.key", pki / f"{stem}.crt"
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path


# ---------------------------------------------------------------------------------------------------------
# Process bookkeeping shared by every LocalCluster in this interpreter, so atexit and signal handlers can
# tear them all down.

_live: set[LocalCluster] = set()
# Re-entrant: the signal handler runs on the main thread, possibly while that thread holds the lock.
_live_lock = threading.RLock()
_handlers_installed = False


def _stop_all() -> None:
    with _live_lock:
        clusters = list(_live)
    for cluster in clusters:
        cluster.stop()


def _on_signal(signum: int, _frame) -> None:
    _stop_all()
    # Re-deliver with the default disposition so the exit status still says "killed by signal".
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _on_signal)


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass
class Ports:
    apiserver: int
    etcd_client: int
    etcd_peer: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls, api_port: int | None) -> Ports:
        return cls(
            apiserver=api_port or free_port(),
            etcd_client=free_port(),
            etcd_peer=free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
            kwok=free_port(),
        )


# Client certificates: user -> (common name, groups...).
_USERS = {
    "admin": ("admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager",),
    "scheduler": ("system:kube-scheduler",),
    "kwok": ("kwok-controller", "system:masters"),
}


@dataclass
class ClusterState:
    phase: str  # building | starting | ready | failed | stopped
    message: str = ""
    kubeconfig: str | None = None
    server: str | None = None
    pid: int | None = None
    # "real": the pod agent runs pods' processes; "simulated": kwok's stages fake them (``pods_reason``
    # says why), which the portal's Clusters page shows as a banner. Empty before the cluster has started.
    pods_mode: str = ""
    pods_reason: str = ""
    # "127.0.0.1:PORT" of the pod agent's cAdvisor and kube-state-metrics series (/metrics/cadvisor,
    # /metrics/kube-state; sandbox/kube/agent/exporter.py), which the sandbox Prometheus scrapes. Empty
    # without the agent (simulated pods) and in state files older than it.
    exporter_address: str = ""
    # The pod bridge's gateway ("10.0.N.1"): the one host address real pods reach, where the sandbox relays
    # services pods use (the Eureka server). Empty without real pods.
    pod_gateway: str = ""
    updated: float = field(default_factory=time.time)

    @classmethod
    def read(cls, workdir: Path) -> ClusterState | None:
        try:
            data = json.loads((Path(workdir) / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        # A state file written by an older or newer sandbox still reads: unknown keys are dropped and
        # missing ones take their defaults.
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def write(self, workdir: Path) -> None:
        path = Path(workdir) / STATE_FILE
        tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(self.__dict__, indent=2) + "\n")
        tmp.replace(path)


class LocalCluster:
    """Start with :meth:`start` (or ``with LocalCluster() as c``); everything lives under ``workdir``."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        api_port: int | None = None,
        nodes: tuple[str, ...] = NODE_NAMES,
        progress: Progress | None = None,
        per_pod_exec: bool = True,
        keep_data: bool = False,
        build_missing: bool = False,
        pods: str = "auto",
        registries: Sequence[str] = (),
        pod_backoff: tuple[float, float] | None = None,
        serve_metrics: bool = True,
    ) -> None:
        """``pods``: "real" runs pods as processes through the pod agent (sandbox.kube.agent; fails to
        start where that is impossible), "simulated" keeps kwok's fake pods, "auto" picks real when
        :func:`podnet.pods_supported`. ``registries``: ``host:port`` of the sandbox registries real pods
        may pull from (more with :meth:`allow_registry`); other images are simulated by the agent.
        ``pod_backoff``: the agent's CrashLoopBackOff (first delay, cap) in seconds (default 10, 300).
        ``serve_metrics``: the agent serves metrics.k8s.io from its containers' cgroups
        (sandbox.kube.agent.metrics_api), so HorizontalPodAutoscalers and the environment page see
        real usage; only with real pods.
        ``per_pod_exec``: watch pods and give each its own exec work directory (see pod_workdir).
        ``keep_data``: resume the certificates and etcd data a previous start left in ``workdir``, so
        what was deployed survives a restart (``make run``); otherwise every start is a fresh cluster.
        ``build_missing``: build binaries that are not cached yet (minutes when cold) instead of failing;
        the launchers (``make cluster``, ``make run``) do, the test suite never does."""
        self.per_pod_exec = per_pod_exec
        self.build_missing = build_missing
        self.keep_data = keep_data
        self.resumed = False
        self._stopping = threading.Event()
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="opsportal-kube-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.node_names = nodes
        self._requested_api_port = api_port
        self._progress = progress or (lambda _msg: None)
        self._procs: list[_Proc] = []
        self._lock = threading.RLock()  # re-entrant for the same reason as _live_lock
        self.ports: Ports | None = None
        self.bins: dict[str, Path] = {}
        if pods not in POD_MODES:
            raise ValueError(f"pods must be one of {POD_MODES}, not {pods!r}")
        self.pods = pods
        self.registries = [r for r in registries if r]
        self.pod_backoff = pod_backoff
        self.serve_metrics = serve_metrics
        self.pods_mode = ""
        self.pods_reason = ""
        self.network: podnet.PodNetwork | None = None
        # "127.0.0.1:PORT" of the pod agent's cAdvisor/kube-state series once it runs (agent/exporter.py).
        self.exporter_address = ""

    # -- public paths ------------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        if not self.ports:
            raise ClusterError("cluster not started")
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def exec_dir(self) -> Path:
        """Work directory of exec sessions into pods that have no per-pod directory."""
        return self.workdir / "exec"

    def api_client(self):
        """A new ``kubernetes.client.ApiClient`` authenticated as the kubeconfig's admin user."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.pki / "ca.crt")
        configuration.cert_file = str(self.pki / "admin.crt")
        configuration.key_file = str(self.pki / "admin.key")
        return client.ApiClient(configuration)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _state(self, phase: str, message: str = "") -> None:
        self._progress(f"[{phase}] {message}" if message else f"[{phase}]")
        ClusterState(
            phase=phase,
            message=message,
            kubeconfig=str(self.kubeconfig) if phase == "ready" else None,
            server=self.server if phase == "ready" else None,
            pid=os.getpid(),
            pods_mode=self.pods_mode,
            pods_reason=self.pods_reason,
            exporter_address=self.exporter_address if phase == "ready" else "",
            pod_gateway=self.network.gateway if self.network is not None and phase == "ready" else "",
        ).write(self.workdir)

    def start(self, timeout: float = 180.0) -> LocalCluster:
        """Build binaries if needed, then start every component and wait until the cluster is usable.

        ``timeout`` covers starting, not a cold build.
        """
        _install_handlers()
        self._stopping.clear()
        with _live_lock:
            _live.add(self)
        try:
            if not build.binaries_ready():
                if not self.build_missing:
                    raise ClusterError(
                        f"control-plane binaries are not built in {build.bin_dir()}; {HOW_TO_BUILD}"
                    )
                self._state("building", "building control-plane binaries (cold: about 10 minutes on 2 cores)")
                build.ensure_binaries(progress=lambda m: self._building(m))
            self.bins = build.binary_paths()
            self._choose_pods_mode()
            self._state("starting", "starting control plane")
            deadline = time.monotonic() + timeout
            try:
                self._start_components(deadline, resume=self._resumable())
            except ClusterError as exc:
                if not self.resumed or self._stopping.is_set():
                    raise
                # Kept data that no longer starts (e.g. etcd killed mid-write) must not block the sandbox.
                self._progress(f"the kept cluster did not start ({exc}); starting a fresh one")
                self._stop_components()
                self._start_components(time.monotonic() + timeout, resume=False)
        except BaseException as exc:
            self._state("failed", f"{type(exc).__name__}: {exc}")
            self.stop(final_phase=None)
            raise
        if self.per_pod_exec and not self.agent_running:
            threading.Thread(target=self._run_pod_agent, name="kube-pod-agent", daemon=True).start()
        self._state("ready", f"apiserver {self.server}")
        return self

    def _start_components(self, deadline: float, *, resume: bool) -> None:
        self._prepare(resume=resume)
        self._start_etcd(deadline)
        self._start_apiserver(deadline)
        if resume:
            self._forget_metrics_api()
        self._start_controller_manager(deadline)
        self._start_scheduler(deadline)
        self._install_kwok_crds(deadline)
        self._start_kwok(deadline)
        self._create_nodes(deadline)
        self._wait_default_service_account(deadline)
        if self.agent_running:
            self._start_agent(deadline)

    def _resumable(self) -> bool:
        needed = ["ca.crt", "ca.key", "sa.key", "sa.pub", "apiserver.crt", "kwok-serving.crt"]
        needed += [f"{user}.crt" for user in _USERS] + [f"{user}.key" for user in _USERS]
        return (
            self.keep_data
            and all((self.pki / name).is_file() for name in needed)
            and (self.workdir / "etcd" / "member").is_dir()
        )

    def _building(self, message: str) -> None:
        if message.startswith("==>"):
            self._state("building", message.removeprefix("==> "))
        else:
            self._progress(message)

    def _stop_components(self) -> list[_Proc]:
        with self._lock:
            procs, self._procs = self._procs, []
            self.exporter_address = ""
        for proc in reversed(procs):
            _terminate(proc.popen)
        return procs

    def stop(self, final_phase: str | None = "stopped") -> None:
        """Terminate components in reverse start order; safe to call repeatedly and from handlers."""
        self._stopping.set()
        procs = self._stop_components()
        if self.network is not None:
            # The agent removes its namespaces and bridge itself; this covers an agent that was killed.
            self.network.teardown()
            self.network = None
        with _live_lock:
            _live.discard(self)
        if final_phase and procs:
            self._state(final_phase)
        if self._owns_workdir and final_phase:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def agent_running(self) -> bool:
        return self.pods_mode == "real"

    @property
    def registries_file(self) -> Path:
        return self.workdir / "config" / "registries"

    def allow_registry(self, host: str) -> None:
        """Let the pod agent pull from ``host`` (``host:port``) too, e.g. a test's own registry."""
        with self._lock:
            known = self.registries_file.read_text().split() if self.registries_file.exists() else []
            if host not in known:
                self.registries_file.write_text("".join(f"{h}\n" for h in [*known, host]))

    def _choose_pods_mode(self) -> None:
        if self.pods == "simulated":
            self.pods_mode, self.pods_reason = "simulated", "simulated pods were asked for"
            return
        supported, reason = podnet.pods_supported()
        if supported and self.pods == "auto":
            try:
                import sandbox.kube.agent.runtime  # noqa: F401 - present once the container runtime exists
            except ImportError:
                supported, reason = (
                    False,
                    "the sandbox container runtime (sandbox.kube.agent.runtime) is missing",
                )
        if not supported and self.pods == "real":
            raise ClusterError(f"real pods are not possible here: {reason}")
        self.pods_mode = "real" if supported else "simulated"
        self.pods_reason = reason
        if self.network is None and supported:
            self.network = podnet.PodNetwork.claim(preferred=1)

    @property
    def pod_cidr(self) -> str:
        return self.network.cidr if self.network is not None else POD_CIDR

    def alive(self) -> list[str]:
        return [p.name for p in self._procs if p.popen.poll() is None]

    # -- per-pod exec and logs -------------------------------------------------------------------------

    def pod_workdir(self, namespace: str, pod: str, uid: str | None = None) -> Path:
        """Give ``pod`` its own exec work directory (kwok ``Exec`` object) and return it.

        With the pod's ``uid`` the Exec object is owned by the pod, so it is garbage-collected with it.
        """
        path = self.workdir / "pods" / namespace / pod
        path.mkdir(parents=True, exist_ok=True)
        metadata: dict = {"name": pod, "namespace": namespace}
        if uid:
            metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]
        self._apply_kwok_object(
            namespace,
            "execs",
            {"kind": "Exec", "metadata": metadata, "spec": {"execs": [{"local": {"workDir": str(path)}}]}},
        )
        return path

    def _run_pod_agent(self) -> None:
        """Give every new pod its own exec work directory, for as long as the cluster runs."""
        from kubernetes import client, watch

        handled: set[str] = set()
        while not self._stopping.is_set():
            try:
                with self.api_client() as api:
                    w = watch.Watch()
                    pods = client.CoreV1Api(api).list_pod_for_all_namespaces
                    for event in w.stream(pods, timeout_seconds=60):
                        pod = event["object"].metadata
                        if self._stopping.is_set():
                            w.stop()
                        elif event["type"] == "ADDED" and pod.uid not in handled:
                            self._give_pod_workdir(pod, handled)
            except Exception as exc:  # the apiserver going away during stop() ends up here too
                if self._stopping.wait(1.0):
                    return
                self._progress(f"pod agent: watch failed, retrying: {exc}")

    def _give_pod_workdir(self, pod, handled: set[str]) -> None:
        from kubernetes import client

        try:
            self.pod_workdir(pod.namespace, pod.name, uid=pod.uid)
        except client.ApiException as exc:
            # Typically the namespace is terminating; the pod is about to disappear anyway.
            self._progress(f"pod agent: no work directory for {pod.namespace}/{pod.name}: {exc.reason}")
        handled.add(pod.uid)

    def set_pod_logs(self, namespace: str, pod: str, lines: list[str], *, follow: bool = False) -> Path:
        """Serve ``lines`` as the logs of every container of ``pod`` (kwok ``Logs`` object)."""
        path = self.workdir / "pods" / namespace / f"{pod}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(_cri_log_line(line) for line in lines))
        self._apply_kwok_object(
            namespace,
            "logs",
            {
                "kind": "Logs",
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {"logs": [{"logsFile": str(path), "follow": follow}]},
            },
        )
        return path

    def _apply_kwok_object(self, namespace: str, plural: str, body: dict) -> None:
        from kubernetes import client

        body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", **body}
        with self.api_client() as api:
            custom = client.CustomObjectsApi(api)
            try:
                custom.create_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", namespace, plural, body)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                custom.patch_namespaced_custom_object(
                    "kwok.x-k8s.io", "v1alpha1", namespace, plural, body["metadata"]["name"], body
                )

    # -- start steps -----------------------------------------------------------------------------------

    def _prepare(self, *, resume: bool) -> None:
        self.resumed = resume
        fresh = ("logs", "exec", "config") if resume else ("pki", "etcd", "logs", "exec", "pods", "config")
        for sub in fresh:
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
            (self.workdir / sub).mkdir(parents=True, mode=0o700)
        self.ports = Ports.pick(self._requested_api_port)
        if resume:
            self._progress(f"resuming the cluster kept in {self.workdir}")
            # Same certificates, new ports: only the kubeconfigs name the apiserver's address.
            for user in _USERS:
                config = self.workdir / "config" / f"{user}.kubeconfig"
                self._write_kubeconfig(config, user, self.pki / f"{user}.crt", self.pki / f"{user}.key")
            # A cluster kept by an older version has no aggregation certificates yet.
            self._create_aggregation_certs(_CA.load(self.pki))
        else:
            self._create_pki()
        (self.logs_dir / "default.log").write_text(_cri_log_line("kwok fake container: no logs configured"))

    def _create_pki(self) -> None:
        ca = _CA.create(self.pki)
        self._create_aggregation_certs(ca)
        ca.issue(self.pki, "apiserver", _name("kube-apiserver"), server=True)
        ca.issue(self.pki, "kwok-serving", _name("kwok"), server=True)
        ca.issue(
            self.pki, "apiserver-kubelet-client", _name("kube-apiserver-kubelet-client", "system:masters")
        )
        for user, (common_name, *groups) in _USERS.items():
            cert, key = ca.issue(self.pki, user, _name(common_name, *groups))
            self._write_kubeconfig(self.workdir / "config" / f"{user}.kubeconfig", user, cert, key)
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(self.pki / "sa.key", sa_key)
        (self.pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _create_aggregation_certs(self, ca: _CA) -> None:
        """The apiserver's front-proxy client certificate and the metrics.k8s.io server's serving one."""
        if not (self.pki / "front-proxy-client.crt").is_file():
            ca.issue(self.pki, "front-proxy-client", _name("front-proxy-client"))
        if not (self.pki / "metrics-server.crt").is_file():
            ca.issue(
                self.pki, "metrics-server", _name("metrics-server"), server=True, names=_METRICS_SERVER_NAMES
            )

    def _write_kubeconfig(self, path: Path, user: str, cert: Path, key: Path) -> None:
        # Embedded data, not file paths: the portal accepts only self-contained kubeconfigs.
        def b64(file: Path) -> str:
            return base64.b64encode(file.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "opsportal-local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}
            ],
            "contexts": [
                {"name": "opsportal-local", "context": {"cluster": "opsportal-local", "user": user}}
            ],
            "current-context": "opsportal-local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        if user == "admin":
            self.kubeconfig.write_text(path.read_text())
            self.kubeconfig.chmod(0o600)

    def _spawn(self, name: str, args: list[str], cwd: Path | None = None) -> _Proc:
        log = self.logs_dir / f"{name}.log"
        self._progress(f"starting {name}")
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.workdir,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
            )
        proc = _Proc(name, popen, log)
        with self._lock:
            self._procs.append(proc)
        return proc

    def _wait(self, what: str, proc: _Proc | None, deadline: float, check: Callable[[], bool]) -> None:
        """Poll ``check`` with backoff until it is true, the process exits, or the deadline passes."""
        delay = 0.05
        last_error = ""
        while True:
            if proc and proc.popen.poll() is not None:
                raise ClusterError(
                    f"{proc.name} exited with code {proc.popen.returncode} while waiting for {what}:\n"
                    + _tail(proc.log)
                )
            try:
                if check():
                    return
            except Exception as exc:  # any failure means "not ready yet"
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                detail = f"\n{_tail(proc.log)}" if proc else ""
                raise ClusterError(f"timed out waiting for {what} (last error: {last_error}){detail}")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _https_ok(self, port: int, path: str, *, client_cert: bool, verify: bool) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert:
            context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context, timeout=5) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    def _start_etcd(self, deadline: float) -> None:
        p = self.ports
        client_url, peer_url = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
        proc = self._spawn(
            "etcd",
            [
                str(self.bins["etcd"]),
                "--name=opsportal",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=opsportal={peer_url}",
                "--log-level=warn",
                # Test data is disposable: skipping fsync makes etcd (and thus every write) much faster.
                *([] if self.keep_data else ["--unsafe-no-fsync"]),
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{p.etcd_client}/health", timeout=5) as r:
                return json.loads(r.read()).get("health") == "true"

        self._wait("etcd /health", proc, deadline, healthy)

    def _start_apiserver(self, deadline: float) -> None:
        p, pki = self.ports, self.pki
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.bins["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={p.apiserver}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                # The aggregation layer: the apiserver proxies /apis/metrics.k8s.io to the pod agent's
                # metrics server (an APIService) with this client certificate and the X-Remote-* headers,
                # which the aggregated server trusts from the request-header CA with the allowed name.
                f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                # A loopback advertise address cannot be published as the kubernetes Service endpoint.
                "--endpoint-reconciler-type=none",
                "--v=0",
            ],
        )
        self._wait(
            "kube-apiserver /readyz",
            proc,
            deadline,
            lambda: self._https_ok(p.apiserver, "/readyz", client_cert=True, verify=True),
        )

    def _forget_metrics_api(self) -> None:
        """Drop the metrics.k8s.io registration a previous run kept: its server died with that run, and
        an unavailable APIService breaks discovery for every client. Whoever serves it registers anew."""
        from kubernetes import client

        with self.api_client() as api:
            with contextlib.suppress(client.ApiException):
                client.ApiregistrationV1Api(api).delete_api_service(metrics_api.APISERVICE_NAME)
            with contextlib.suppress(client.ApiException):
                client.CoreV1Api(api).delete_namespaced_service(
                    metrics_api.SERVICE_NAME, metrics_api.SERVICE_NAMESPACE
                )

    def _component_flags(self, user: str, port: int) -> list[str]:
        kubeconfig = self.workdir / "config" / f"{user}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
        ]

    def _start_controller_manager(self, deadline: float) -> None:
        p, pki = self.ports, self.pki
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.bins["kube-controller-manager"]),
                *self._component_flags("controller-manager", p.controller_manager),
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # HPAs read metrics.k8s.io every 5 s instead of 15 s, so a test sees a scale-out sooner.
                "--horizontal-pod-autoscaler-sync-period=5s",
            ],
        )
        self._wait(
            "kube-controller-manager /healthz",
            proc,
            deadline,
            lambda: self._https_ok(p.controller_manager, "/healthz", client_cert=False, verify=False),
        )

    def _start_scheduler(self, deadline: float) -> None:
        p = self.ports
        proc = self._spawn(
            "kube-scheduler",
            [str(self.bins["kube-scheduler"]), *self._component_flags("scheduler", p.scheduler)],
        )
        self._wait(
            "kube-scheduler /healthz",
            proc,
            deadline,
            lambda: self._https_ok(p.scheduler, "/healthz", client_cert=False, verify=False),
        )

    def _install_kwok_crds(self, deadline: float) -> None:
        from kubernetes import client, utils

        docs = [d for d in yaml.safe_load_all(self.bins["kwok-crds.yaml"].read_text()) if d]
        with self.api_client() as api:
            ext = client.ApiextensionsV1Api(api)
            existing = {crd.metadata.name for crd in ext.list_custom_resource_definition().items}
            missing = [doc for doc in docs if doc["metadata"]["name"] not in existing]  # a resumed cluster
            if missing:
                utils.create_from_yaml(api, yaml_objects=missing)

            def established() -> bool:
                for doc in docs:
                    crd = ext.read_custom_resource_definition(doc["metadata"]["name"])
                    conditions = {c.type: c.status for c in (crd.status.conditions or [])}
                    if conditions.get("Established") != "True":
                        return False
                return True

            self._wait("kwok CRDs established", None, deadline, established)

    def _kwok_config(self) -> Path:
        stages = [d for d in yaml.safe_load_all(self.bins["kwok-stages.yaml"].read_text()) if d]
        if self.agent_running:
            # The agent is the pods' kubelet; kwok keeps only the node stages (initialize, heartbeat).
            stages = [d for d in stages if d.get("spec", {}).get("resourceRef", {}).get("kind") != "Pod"]
        docs = [
            *stages,
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterExec",
                "metadata": {"name": "local"},
                "spec": {"execs": [{"local": {"workDir": str(self.exec_dir)}}]},
            },
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterLogs",
                "metadata": {"name": "default"},
                "spec": {"logs": [{"logsFile": str(self.logs_dir / "default.log"), "follow": False}]},
            },
        ]
        path = self.workdir / "config" / "kwok.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return path

    def _start_kwok(self, deadline: float) -> None:
        p, pki = self.ports, self.pki
        proc = self._spawn(
            "kwok",
            [
                str(self.bins["kwok"]),
                f"--config={self._kwok_config()}",
                f"--kubeconfig={self.workdir / 'config' / 'kwok.kubeconfig'}",
                "--manage-all-nodes=true",
                "--enable-crds=Exec,Logs",
                "--node-ip=127.0.0.1",
                f"--node-port={p.kwok}",
                f"--server-address=127.0.0.1:{p.kwok}",
                f"--tls-cert-file={pki / 'kwok-serving.crt'}",
                f"--tls-private-key-file={pki / 'kwok-serving.key'}",
                f"--cidr={self.pod_cidr}",
                "--node-lease-duration-seconds=40",
            ],
        )
        self._wait(
            "kwok /healthz",
            proc,
            deadline,
            lambda: self._https_ok(p.kwok, "/healthz", client_cert=False, verify=True),
        )

    def _start_agent(self, deadline: float) -> None:
        ready_file = self.workdir / "config" / "agent.ready"
        ready_file.unlink(missing_ok=True)
        exporter_file = self.workdir / "config" / "agent.exporter"
        exporter_file.unlink(missing_ok=True)
        self.exporter_address = ""
        self.registries_file.touch()
        args = [
            sys.executable,
            "-m",
            "sandbox.kube.agent",
            f"--kubeconfig={self.kubeconfig}",
            f"--workdir={self.workdir}",
            f"--net-index={self.network.index}",
            f"--registries-file={self.registries_file}",
            f"--ready-file={ready_file}",
            f"--exporter-file={exporter_file}",
            *(f"--node={node}" for node in self.node_names),
            *(f"--registry={registry}" for registry in self.registries),
        ]
        if self.serve_metrics:
            args.append("--serve-metrics")
        if self.pod_backoff:
            args += [f"--backoff-base={self.pod_backoff[0]:g}", f"--backoff-max={self.pod_backoff[1]:g}"]
        proc = self._spawn(AGENT, args, cwd=Path(__file__).resolve().parents[2])
        self._wait("pod agent", proc, deadline, ready_file.exists)
        # Written (atomically) before the ready file.
        self.exporter_address = exporter_file.read_text().strip()

    def _create_nodes(self, deadline: float) -> None:
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            existing = {node.metadata.name for node in core.list_node().items}  # a resumed cluster
            for name in self.node_names:
                if name in existing:
                    continue
                core.create_node(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": name,
                            "annotations": {
                                "kwok.x-k8s.io/node": "fake",
                                "node.alpha.kubernetes.io/ttl": "0",
                            },
                            "labels": {
                                "type": "kwok",
                                "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64",
                            },
                        },
                        "status": {
                            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                        },
                    }
                )

            def all_ready() -> bool:
                nodes = core.list_node().items
                ready = {
                    n.metadata.name
                    for n in nodes
                    if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
                }
                return set(self.node_names) <= ready

            kwok = next(proc for proc in self._procs if proc.name == "kwok")
            self._wait("fake nodes Ready", kwok, deadline, all_ready)

    def _wait_default_service_account(self, deadline: float) -> None:
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            self._wait(
                "default ServiceAccount",
                None,
                deadline,
                lambda: bool(core.read_namespaced_service_account("default", "default")),
            )


def _cri_log_line(text: str) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} stdout F {text}\n"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _terminate(popen: subprocess.Popen, grace: float = 10.0) -> None:
    if popen.poll() is not None:
        return
    stop(popen, timeout=grace)
    # Anything the component left in its group (kwok exec sessions) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)


def start_in_background(
    workdir: Path, *, api_port: int | None = None, registries: Sequence[str] = ()
) -> subprocess.Popen | None:
    """Run ``python -m sandbox.kube up --dir workdir`` detached; poll :func:`read_state` for progress.

    The supervisor builds the binaries if needed, so the caller (the portal) never blocks on a build.
    It tears the cluster down when this process exits (checked by pid, so the calling thread may end).
    Returns None when a supervisor for ``workdir`` is still alive, so repeated calls start one cluster.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    current = ClusterState.read(workdir)
    if current and current.phase in ACTIVE_PHASES and current.pid and pid_alive(current.pid):
        return None
    (workdir / STATE_FILE).unlink(missing_ok=True)
    args = [
        sys.executable,
        "-m",
        "sandbox.kube",
        "up",
        "--dir",
        str(workdir),
        "--exit-with",
        str(os.getpid()),
        "--keep-data",
    ]
    # Any free port: the fixed default is for `make cluster`, and two clusters may start at once here.
    args += ["--port", str(api_port or free_port())]
    args += [f"--registry={registry}" for registry in registries]
    with (workdir / "supervisor.log").open("ab") as log:
        proc = subprocess.Popen(
            args,
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # The supervisor needs a moment to import before its first write, so this normally lands first;
    # the check keeps a fast supervisor's own state from being overwritten.
    if not (workdir / STATE_FILE).exists():
        ClusterState(phase="starting", message="launching supervisor", pid=proc.pid).write(workdir)
    return proc


def read_state(workdir: Path) -> ClusterState:
    """Current phase of the cluster in ``workdir``; ``stopped`` when nothing was ever started there."""
    state = ClusterState.read(workdir)
    if state is None:
        return ClusterState(phase="stopped", message="not started")
    if state.phase in ACTIVE_PHASES and state.pid and not pid_alive(state.pid):
        return ClusterState(phase="failed", message=f"supervisor {state.pid} died during {state.phase}")
    return state


def dev_cluster_status() -> ClusterState | None:
    """The portal's DEV_CLUSTER_STATUS hook under `make run`: the state in SANDBOX_KUBE_DIR, if set."""
    workdir = os.environ.get("SANDBOX_KUBE_DIR", "")
    return read_state(Path(workdir)) if workdir else None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited child its parent has not reaped yet (zombie) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
