"""The sandbox that `make run` serves the portal with: the release pipeline's stand-ins, and the local
Kubernetes control plane registered as the "test" and "prod" clusters.

The control plane may need a first build of several minutes; it runs in the background and the
clusters page shows its progress (SANDBOX_KUBE_DIR) until it is registered.
"""

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from django.db import transaction

from clusters.models import Cluster, LogPipeline
from clusters.models.logging import DEFAULT_NAMESPACE, PROXY_PORT, SERVICE_NAME
from sandbox.alertmanager import AlertmanagerError, AlertmanagerServer, webhook_token
from sandbox.alertmanager import find_binary as find_alertmanager
from sandbox.eureka import HOW_TO_BUILD as HOW_TO_BUILD_EUREKA
from sandbox.eureka import EurekaError, EurekaServer, jar_ready
from sandbox.eureka.server import find_java
from sandbox.kafka import HOW_TO_BUILD as HOW_TO_BUILD_KAFKA
from sandbox.kafka import KafkaError, KafkaServer, libs_ready
from sandbox.kube.cluster import ClusterState, pid_alive, read_state, start_in_background
from sandbox.pipeline import LOGPROXY_PACKAGE, SandboxPipeline
from sandbox.procs import free_port, port_free
from sandbox.prometheus import PrometheusError, PrometheusServer, find_binary, find_promtool, monitoring_token
from sandbox.seed import DEMO_PROJECTS, demo_repository
from sandbox.service_relay import ServiceRelay

logger = logging.getLogger(__name__)
SANDBOX_CLUSTERS = {"test": "sandbox-test", "prod": "sandbox-prod"}
# A previous run's control-plane supervisor gets this long to tear down before it is killed.
PREVIOUS_SUPERVISOR_GRACE_SECONDS = 30.0


def start_pipeline(root: Path) -> SandboxPipeline:
    pipeline = SandboxPipeline(root).start()
    for name in DEMO_PROJECTS:
        pipeline.add_repository(demo_repository(name), demo=name)
    # The log proxy's sources as ops/logproxy, brought up to date on every start: the portal builds its image
    # with the python recipe like any service's.
    if LOGPROXY_PACKAGE.is_dir():
        pipeline.add_logproxy()
    return pipeline


def register_clusters(kubeconfig: str, server: str) -> None:
    """One control plane serves both environments: the namespace template keeps them apart."""
    with transaction.atomic():
        for environment, name in SANDBOX_CLUSTERS.items():
            Cluster.objects.update_or_create(
                name=name,
                defaults={
                    "environment": environment,
                    "api_url": server,
                    "auth_type": "kubeconfig",
                    "credential": kubeconfig,
                    "namespace_template": "{project}-{environment}",
                    "last_check_message": "local sandbox control plane (sandbox/kube)",
                },
            )


def real_clusters_configured() -> bool:
    return Cluster.objects.exclude(name__in=SANDBOX_CLUSTERS.values()).exists()


def stop_previous_supervisor(workdir: Path, grace: float = PREVIOUS_SUPERVISOR_GRACE_SECONDS) -> int | None:
    """Stop the control plane a previous `make run` left in ``workdir`` (its supervisor tears down a few
    seconds after its launcher exits); return its pid, or None when none was alive.

    Only the launcher holding the run lock calls this, so a live supervisor here is never the current
    run's. Its apiserver would still answer for a moment: registering that URL left the portal without a
    cluster once it died."""
    state = ClusterState.read(workdir)
    if state is None or not state.pid or not pid_alive(state.pid):
        return None
    print(f"Sandbox: stopping the previous run's control plane (supervisor pid {state.pid})…", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state.pid, signal.SIGTERM)  # started in its own session: the group is its components
    deadline = time.monotonic() + grace
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(state.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state.pid, signal.SIGKILL)
    return state.pid


def apiserver_answers(workdir: Path, server: str) -> bool:
    """True when the apiserver at ``server`` says it is ready, to the cluster's own admin certificate."""
    pki = Path(workdir) / "pki"
    try:
        answer = requests.get(
            f"{server}/readyz",
            verify=str(pki / "ca.crt"),
            cert=(str(pki / "admin.crt"), str(pki / "admin.key")),
            timeout=5,
        )
    except (requests.RequestException, OSError):
        return False
    return answer.status_code == 200


def start_cluster(
    workdir: Path, on_ready=register_clusters, registries: Sequence[str] = ()
) -> threading.Thread:
    """Start (building first if needed) the local control plane; register it once it is ready.

    Registered only once this run's own supervisor reports ready and its apiserver answers."""
    stop_previous_supervisor(workdir)
    # Real pods pull only from these registries (the sandbox's own); other images stay simulated.
    proc = start_in_background(workdir, registries=registries)
    supervisor = proc.pid if proc is not None else None

    def follow() -> None:
        last = ""
        while True:
            state = read_state(workdir)
            if state.message != last:
                logger.info("sandbox cluster: %s %s", state.phase, state.message)
                last = state.message
            ours = supervisor is None or state.pid == supervisor
            if (
                ours
                and state.phase == "ready"
                and state.kubeconfig
                and apiserver_answers(workdir, state.server or "")
            ):
                on_ready(Path(state.kubeconfig).read_text(), state.server or "")
                logger.info("sandbox cluster registered as %s", ", ".join(SANDBOX_CLUSTERS.values()))
                return
            if (ours and state.phase in ("failed", "stopped")) or (
                proc is not None and proc.poll() is not None
            ):
                return
            time.sleep(1)

    thread = threading.Thread(target=follow, name="sandbox-cluster", daemon=True)
    thread.start()
    return thread


def start_prometheus(
    var_dir: Path, *, portal_url: str, kube_dir: Path | None = None
) -> tuple[PrometheusServer, dict[str, str]] | None:
    """Debian's Prometheus for `make run`, and the portal's settings for it; None (with the reason
    printed) when it is not installed or does not start: the portal then runs without monitoring."""
    promtool = find_promtool()
    if find_binary() is None or promtool is None:
        print("Sandbox: no Prometheus (apt-get install prometheus); monitoring is off.", flush=True)
        return None
    token, token_file = monitoring_token(var_dir)
    server = PrometheusServer(var_dir / "prometheus", kube_dir=kube_dir, retention="1d")
    try:
        server.start()
    except PrometheusError as exc:
        print(f"Sandbox: Prometheus did not start, monitoring is off: {exc}", flush=True)
        return None
    return server, {
        "PROMETHEUS_URL": server.url,
        "PROMETHEUS_CONFIG_FILE": str(server.config_file),
        "PROMETHEUS_CONFIG_BASE": str(server.base_file),
        "PROMTOOL": promtool,
        "PROMETHEUS_RULES_DIR": str(server.rules_dir),
        "PROMETHEUS_SCRAPE_INTERVAL": "5",
        "PROMETHEUS_PORTAL_URL": portal_url,
        "MONITORING_TOKEN": token,
        "MONITORING_TOKEN_FILE": str(token_file),
    }


def start_alertmanager(var_dir: Path, *, portal_url: str) -> tuple[AlertmanagerServer, dict[str, str]] | None:
    """Debian's Alertmanager for `make run`, its receiver posting to the portal, and the portal's settings
    for it; None (with the reason printed) when it is not installed or does not start."""
    if find_alertmanager() is None:
        print(
            "Sandbox: no Alertmanager (apt-get install prometheus-alertmanager); silences are off.",
            flush=True,
        )
        return None
    token = webhook_token(var_dir)
    # Short enough to watch an alert arrive while trying the portal; production keeps the defaults.
    server = AlertmanagerServer(
        var_dir / "alertmanager",
        portal_url=portal_url,
        token=token,
        group_wait="10s",
        group_interval="1m",
        repeat_interval="4h",
    )
    try:
        server.start()
    except AlertmanagerError as exc:
        print(f"Sandbox: Alertmanager did not start, silences are off: {exc}", flush=True)
        return None
    return server, {"ALERTMANAGER_URL": server.url, "ALERTMANAGER_WEBHOOK_TOKEN": token}


# The sandbox's alert receivers for `make run`: channels configured with these reach the stand-ins, never
# DingTalk, WeCom, a mail relay or Alibaba Cloud. Printed at start; they are demo values, not secrets.
DEMO_DINGTALK = {
    "access_token": "sandbox-dingtalk",
    "signing_secret": "SECsandbox0123456789",
    "keyword": "OpsPortal",
}
DEMO_WECOM_KEY = "sandbox-wecom-key"
DEMO_SMS = {
    "access_key_id": "LTAIsandbox",
    "access_key_secret": "sandbox-sms-secret",
    "sign_name": "OpsPortal",
    "template_code": "SMS_000000001",
    "template": "${service} ${env} ${severity}: ${summary} ${link}",
}


class AlertStandins:
    """The chat-robot stand-in (one DingTalk robot with signing and a keyword, one WeCom robot), a real
    SMTP server and the SMS stand-in, serving from this process; ``env`` points the portal at them."""

    def __init__(self) -> None:
        from sandbox.chatrobots import ChatRobotsStandin
        from sandbox.mail import SmtpServer
        from sandbox.sms import SmsStandin

        self.robots = ChatRobotsStandin()
        self.robots.add_dingtalk_robot(
            DEMO_DINGTALK["access_token"],
            secret=DEMO_DINGTALK["signing_secret"],
            keywords=[DEMO_DINGTALK["keyword"]],
        )
        self.robots.add_wecom_robot(DEMO_WECOM_KEY)
        self.mail = SmtpServer()
        self.sms = SmsStandin(
            {DEMO_SMS["access_key_id"]: DEMO_SMS["access_key_secret"]},
            sign_names=[DEMO_SMS["sign_name"]],
            templates={DEMO_SMS["template_code"]: DEMO_SMS["template"]},
        )

    def start(self) -> dict[str, str]:
        self.robots.start()
        host, port = self.mail.start()
        self.sms.start()
        return {
            "DINGTALK_WEBHOOK_BASE": self.robots.url,
            "WECOM_WEBHOOK_BASE": self.robots.url,
            "EMAIL_HOST": host,
            "EMAIL_PORT": str(port),
            "EMAIL_USE_TLS": "false",
            "EMAIL_USE_SSL": "false",
            "SMS_ENDPOINT": self.sms.url,
            "SMS_ACCESS_KEY_ID": DEMO_SMS["access_key_id"],
            "SMS_ACCESS_KEY_SECRET": DEMO_SMS["access_key_secret"],
        }

    def describe(self) -> str:
        dingtalk = ", ".join(f"{k} {v}" for k, v in DEMO_DINGTALK.items())
        return (
            f"Sandbox: alert stand-ins: robots {self.robots.url} (DingTalk {dingtalk}; WeCom key "
            f"{DEMO_WECOM_KEY}; received messages at {self.robots.url}/_standin/messages), "
            f"SMTP {self.mail.host}:{self.mail.port}, SMS {self.sms.url} (sign name {DEMO_SMS['sign_name']}, "
            f"template {DEMO_SMS['template_code']})"
        )

    def stop(self) -> None:
        for server in (self.robots, self.mail, self.sms):
            with contextlib.suppress(Exception):
                server.stop()


# Apollo envs the demo projects map to (test → FAT, prod → PRO, Apollo's usual names).
APOLLO_DEMO_ENVS = {"test": "FAT", "prod": "PRO"}


class ApolloService:
    """The Apollo stand-in for `make run`, serving from this process: Apollo's default user and the demo
    users (the portal records its user as Apollo's operator, so they must exist in Apollo), an app per demo
    project with the namespace ``application`` in FAT and PRO, and one consumer token granted them all.
    The token and the state live under ``root``, so a token saved in a project and its releases outlive a
    restart."""

    def __init__(self, root: Path) -> None:
        import secrets

        from sandbox.apollo import ApolloStandin
        from sandbox.seed import DEMO_USERS

        root.mkdir(parents=True, exist_ok=True)
        token_file = root / "token"
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(20))  # Apollo's consumer tokens are 40 hex characters
            token_file.chmod(0o600)
        self.token = token_file.read_text().strip()
        self.standin = ApolloStandin(["apollo", *DEMO_USERS], state_file=root / "state.json")
        for user in ("apollo", *DEMO_USERS):
            self.standin.add_user(user)
        for project in DEMO_PROJECTS:
            self.standin.add_app(project, envs=APOLLO_DEMO_ENVS.values())
        self.standin.add_consumer(self.token, {project: "*" for project in DEMO_PROJECTS})

    @property
    def url(self) -> str:
        return self.standin.url

    def start(self) -> dict[str, str]:
        self.standin.start()
        return {"APOLLO_PORTAL_URL": self.standin.url}

    def describe(self) -> str:
        mapping = ", ".join(f"{env} → {apollo}" for env, apollo in APOLLO_DEMO_ENVS.items())
        return (
            f"Sandbox: Apollo stand-in {self.standin.url} (Open API token {self.token}; apps "
            f"{', '.join(DEMO_PROJECTS)}, cluster default, namespace application; envs {mapping})"
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.standin.stop()


class SandboxEureka:
    """The real Eureka server for `make run`, started in the background (it takes 10–20 s) on the port of
    the previous run when free (pods keep their EUREKA_URL across restarts), set as the sandbox clusters'
    Eureka URL, and relayed to the pods' gateway once the control plane says which it is."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.server: EurekaServer | None = None
        self.gateway = ""
        self.pod_url = ""
        self._ready = False
        self._lock = threading.Lock()

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    def start(self) -> threading.Thread | None:
        """Start the server in a thread; None (with the reason printed) when it cannot run here."""
        if find_java() is None:
            print("Sandbox: no java (apt-get install openjdk-17-jdk-headless); Eureka is off.", flush=True)
            return None
        if not jar_ready():
            print(f"Sandbox: no Eureka server built, Eureka is off; {HOW_TO_BUILD_EUREKA}.", flush=True)
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            saved = int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            saved = 0
        self.server = EurekaServer(self.root, port=saved if saved and port_free(saved) else 0)
        try:
            # Spawned here, not in the thread: the JVM gets SIGTERM when the thread that spawned it ends.
            self.server.start(wait=False)
        except EurekaError as exc:
            print(f"Sandbox: the Eureka server did not start, Eureka is off: {exc}", flush=True)
            return None
        thread = threading.Thread(target=self._run, args=(self.server,), name="sandbox-eureka", daemon=True)
        thread.start()
        return thread

    def _run(self, server: EurekaServer) -> None:
        try:
            server.wait_ready()
        except EurekaError as exc:
            print(f"Sandbox: the Eureka server did not start, Eureka is off: {exc}", flush=True)
            return
        self.port_file.write_text(str(server.port))
        print(f"Sandbox: Eureka {server.eureka_url} (log {server.log_file})", flush=True)
        with self._lock:
            self._ready = True
            self._apply()

    def cluster_ready(self, gateway: str) -> None:
        """The sandbox clusters are registered; ``gateway`` is their pods' bridge address ("" without
        real pods)."""
        with self._lock:
            self.gateway = gateway
            self._apply()

    def _apply(self) -> None:
        if not self._ready or self.server is None:
            return
        Cluster.objects.filter(name__in=SANDBOX_CLUSTERS.values()).update(eureka_url=self.server.eureka_url)
        if self.gateway and not self.pod_url:
            self.pod_url = self.server.pod_url(self.gateway)
            print(f"Sandbox: Eureka for pods (EUREKA_URL): {self.pod_url}", flush=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class SandboxKafka:
    """The real Kafka broker for `make run`: its log directory under ``root`` (var/sandbox/kafka) kept across
    runs (formatted once), on the previous run's ports when free (so the bootstrap addresses stay), started
    in the background (about 10 s).

    Pods need a listener on their bridge's gateway, known only once the control plane is ready, and a
    broker's listeners are fixed at its start: :meth:`cluster_ready` then restarts it once with that
    listener (same data, same ports). One thread owns every broker process, because the kernel's
    parent-death signal follows the thread that spawned it, and the control plane's callback thread ends."""

    BRIDGE_WAIT_SECONDS = 60.0

    def __init__(self, root: Path, *, on_pods_listener=None) -> None:
        self.root = Path(root)
        self.server: KafkaServer | None = None
        self.gateway = ""
        # Called with the broker once it serves pods (the bootstrap addresses the log pipelines need).
        self.on_pods_listener = on_pods_listener
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._saved_pod_port = 0

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def bootstrap(self) -> str:
        """For clients on this machine (the portal); known from :meth:`start` on, answering ~10 s later."""
        return self.server.bootstrap if self.server is not None else ""

    def start(self) -> threading.Thread | None:
        """Start the broker in its thread; None (with the reason printed) when it cannot run here."""
        if find_java() is None:
            print("Sandbox: no java (apt-get install openjdk-17-jdk-headless); Kafka is off.", flush=True)
            return None
        if not libs_ready():
            print(f"Sandbox: Kafka is not built, Kafka is off; {HOW_TO_BUILD_KAFKA}.", flush=True)
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            saved = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            saved = {}
        ports = {}
        for name in ("port", "controller_port"):
            port = saved.get(name)
            ports[name] = port if isinstance(port, int) and port_free(port) else free_port()
        self.server = KafkaServer(self.root, **ports)
        self._saved_pod_port = saved.get("pod_port") if isinstance(saved.get("pod_port"), int) else 0
        self._thread = threading.Thread(target=self._own, name="sandbox-kafka", daemon=True)
        self._thread.start()
        return self._thread

    def cluster_ready(self, gateway: str) -> None:
        """The sandbox clusters are registered; ``gateway`` is their pods' bridge address ("" without
        real pods)."""
        self.gateway = gateway
        self._wake.set()

    def _own(self) -> None:
        server = self.server
        while not self._stopping:
            gateway = self.gateway
            if server.process is None or gateway != server.pod_gateway:
                self._run(server, gateway)
            self._wake.wait()
            self._wake.clear()
        server.stop()

    def _run(self, server: KafkaServer, gateway: str) -> None:
        server.stop()
        if gateway and not self._bridge_up(gateway):
            print(f"Sandbox: pods' gateway {gateway} never came up; Kafka has no pods' listener.", flush=True)
            gateway = self.gateway = ""
        server.pod_gateway = gateway
        server.pod_port = self._saved_pod_port if gateway and port_free(self._saved_pod_port, gateway) else 0
        try:
            server.start()
        except KafkaError as exc:
            print(f"Sandbox: the Kafka broker did not start, Kafka is off: {exc}", flush=True)
            return
        ports = {"port": server.port, "controller_port": server.controller_port, "pod_port": server.pod_port}
        self._saved_pod_port = server.pod_port or self._saved_pod_port
        ports["pod_port"] = self._saved_pod_port
        self.ports_file.write_text(json.dumps(ports))
        print(f"Sandbox: Kafka {server.bootstrap} (log {server.log_file})", flush=True)
        if gateway:
            print(f"Sandbox: Kafka for pods (bootstrap servers): {server.pod_bootstrap}", flush=True)
            if self.on_pods_listener is not None:
                try:
                    self.on_pods_listener(server)
                except Exception:  # make run goes on without log pipelines; the cause is in the log
                    logger.exception("the sandbox log pipelines were not set up")

    def _bridge_up(self, gateway: str) -> bool:
        deadline = time.monotonic() + self.BRIDGE_WAIT_SECONDS
        while not self._stopping and time.monotonic() < deadline:
            if port_free(0, gateway):  # the address exists on an interface
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(60)
        if self.server is not None:
            self.server.stop()


# Both sandbox clusters are one control plane: each environment's proxy gets a namespace of its own.
LOG_PIPELINE_NAMESPACES = {"test": DEFAULT_NAMESPACE, "prod": f"{DEFAULT_NAMESPACE}-prod"}


class SandboxLogPipelines:
    """The sandbox clusters' log pipelines for `make run`: Kafka as the pods and the portal reach it, and,
    since no ClusterIP routes here, a :class:`ServiceRelay` per cluster on the pods' gateway standing in for
    kube-proxy in front of the proxy's Service; its address is what services get in ``LOG_REDIS_URL``.
    The proxy itself is deployed from the portal (Log pipelines page), like in a real cluster."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.relays: dict[str, ServiceRelay] = {}
        self.kubeconfig = ""
        self.gateway = ""

    @property
    def ports_file(self) -> Path:
        return self.root / "relay-ports.json"

    def cluster_ready(self, kubeconfig: str, gateway: str) -> None:
        """``kubeconfig`` is the sandbox cluster's kubeconfig text; ``gateway`` its pods' bridge address."""
        self.kubeconfig, self.gateway = kubeconfig, gateway

    def kafka_serves_pods(self, kafka: KafkaServer) -> None:
        if not self.kubeconfig or not self.gateway:
            return
        import yaml
        from kubernetes import config as kube_config

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            saved = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            saved = {}
        api_client = kube_config.new_client_from_config_dict(yaml.safe_load(self.kubeconfig))
        for environment, cluster_name in SANDBOX_CLUSTERS.items():
            namespace = LOG_PIPELINE_NAMESPACES[environment]
            if environment not in self.relays:
                port = saved.get(environment)
                port = port if isinstance(port, int) and port_free(port, self.gateway) else 0
                relay = ServiceRelay(
                    self.gateway,
                    port,
                    api_client=api_client,
                    namespace=namespace,
                    service=SERVICE_NAME,
                    port=PROXY_PORT,
                )
                self.relays[environment] = relay.start()
            cluster = Cluster.objects.filter(name=cluster_name).first()
            if cluster is None:
                continue
            LogPipeline.objects.update_or_create(
                cluster=cluster,
                defaults={
                    "kafka_bootstrap_servers": kafka.pod_bootstrap,
                    "portal_bootstrap_servers": kafka.bootstrap,
                    "namespace": namespace,
                    "service_address": self.relays[environment].address,
                    # Ops may have tuned the rest on the page; only the sandbox's addresses are its own.
                },
            )
            address = self.relays[environment].address
            print(
                f"Sandbox: log pipeline of {cluster_name}: services push to {address} (a relay to Service "
                f"{SERVICE_NAME} in {namespace}); deploy the proxy on the Log pipelines page",
                flush=True,
            )
        self.ports_file.write_text(json.dumps({env: relay.listen_port for env, relay in self.relays.items()}))

    def stop(self) -> None:
        for relay in self.relays.values():
            relay.stop()
