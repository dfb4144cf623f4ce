"""`make run`: migrate, seed the demo, and serve the portal with a background worker.

Embedded by default (SQLite, filesystem broker, no Redis). With DATABASE_URL / REDIS_URL set it
uses PostgreSQL and Redis instead. Everything started here stops with it (Ctrl-C).

The web server and the worker are supervised: one that exits is started again after a growing pause
(1 s, 2 s, … 30 s), and the launcher gives up only after MAX_FAST_CRASHES exits in a row each within
FAST_CRASH_SECONDS of starting. One launcher runs per var dir (a lock, with its pid in run.pid): a new
one waits for a stopping one to finish, so the two never share the sandbox's ports or control plane.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import IO

from sandbox.procs import port_open, spawn, stop_all, wait_for

HOST = os.environ.get("OPSPORTAL_HOST", "127.0.0.1")
PORT = int(os.environ.get("OPSPORTAL_PORT", "8000"))
BASE_DIR = Path(__file__).resolve().parent.parent
FAST_CRASH_SECONDS = 10.0
MAX_FAST_CRASHES = 5
MAX_RESTART_DELAY_SECONDS = 30.0
# How long a new launcher waits for the previous one to stop (its children get 15 s, the sandbox more).
PREVIOUS_RUN_WAIT_SECONDS = 60.0


class Supervised:
    """A child process kept running: restarted with backoff when it exits."""

    def __init__(
        self, name: str, args: list[str], *, log: Path, env: dict, cwd: Path, on_exit=lambda pid: None
    ) -> None:
        self.name, self.args, self.log, self.env, self.cwd = name, args, log, env, cwd
        self.on_exit = on_exit
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.fast_crashes = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        self.proc = spawn(self.args, log=self.log, env=self.env, cwd=self.cwd)
        self.started = time.monotonic()
        self.restart_at = None
        print(f"The {self.name} started (pid {self.proc.pid}).", flush=True)

    def check(self) -> bool:
        """Restart the child when it is gone and its pause is over; False once it is given up on."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return True
        if self.proc is None or self.proc.poll() is None:
            return True
        code = self.proc.returncode
        self.on_exit(self.proc.pid)
        # What it left in its own process group (a crashed Celery's pool children) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.fast_crashes = self.fast_crashes + 1 if now - self.started < FAST_CRASH_SECONDS else 1
        if self.fast_crashes >= MAX_FAST_CRASHES:
            print(
                f"The {self.name} exited with code {code} {self.fast_crashes} times in a row, each within "
                f"{FAST_CRASH_SECONDS:.0f} s of starting; giving up. See {self.log}.",
                file=sys.stderr,
                flush=True,
            )
            return False
        delay = min(2.0 ** (self.fast_crashes - 1), MAX_RESTART_DELAY_SECONDS)
        print(
            f"The {self.name} exited with code {code}; restarting it in {delay:.0f} s (see {self.log}).",
            file=sys.stderr,
            flush=True,
        )
        self.restart_at = now + delay
        return True


def run_lock(var_dir: Path, wait: float = PREVIOUS_RUN_WAIT_SECONDS) -> IO | None:
    """Hold the var dir's run lock for this process's life (the kernel drops it when we die, however).

    Waits for a previous launcher that is stopping; None when one is still running after ``wait``."""
    var_dir.mkdir(parents=True, exist_ok=True)
    pidfile = var_dir / "run.pid"
    lock = (var_dir / "run.lock").open("a")  # noqa: SIM115 - held until exit
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            previous = pidfile.read_text().strip() if pidfile.exists() else "?"
            if time.monotonic() > deadline:
                print(
                    f"Another `make run` (pid {previous}) still runs with {var_dir}; stop it first.",
                    file=sys.stderr,
                )
                lock.close()
                return None
            if not announced:
                print(f"Waiting for the previous `make run` (pid {previous}) to stop…", flush=True)
                announced = True
            time.sleep(0.2)
    pidfile.write_text(f"{os.getpid()}\n")
    return lock


def apply_prometheus_config(env: dict, reason: str) -> None:
    """Apply the portal's Prometheus configuration with the portal's own settings (a child process:
    this launcher's settings were read before the sandbox's were known)."""
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "prometheus_config", "--apply", "--reason", reason],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    outcome = (result.stdout + result.stderr).strip().splitlines()
    print(f"Sandbox: {outcome[-1] if outcome else 'prometheus_config: no output'}", flush=True)


def portal_metrics_env(var_dir: Path) -> dict[str, str]:
    """The portal's own /metrics under `make run`: a fresh multiprocess directory at each start (the web
    server and the worker add up there; nothing of an earlier run is counted). The token the sandbox's
    Prometheus scrapes it with comes with that Prometheus (sandbox.prometheus.monitoring_token)."""
    multiproc = var_dir / "metrics"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}


def _metrics_process_dead(multiproc: Path, pid: int) -> None:
    """A supervised child that exited no longer counts open sockets (its restart gets a new pid)."""
    from prometheus_client import multiprocess

    from opsportal.metrics import process_identifier

    multiprocess.mark_process_dead(process_identifier(pid), path=str(multiproc))


def start_grafana(root: Path):
    """The Grafana stand-in, serving from this process; its state and token persist under ``root`` so a
    restart keeps the dashboards the portal saved."""
    import secrets

    from sandbox.grafana import GrafanaStandin

    root.mkdir(parents=True, exist_ok=True)
    token_file = root / "token"
    if not token_file.exists():
        token_file.write_text(f"glsa_{secrets.token_urlsafe(24)}")
        token_file.chmod(0o600)
    token = token_file.read_text().strip()
    standin = GrafanaStandin(token, state_file=root / "state.json")
    standin.start()
    return standin


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from sandbox.kube.cluster import read_state
    from sandbox.seed import seed_demo

    lock = run_lock(settings.VAR_DIR)
    if lock is None:
        return 1
    metrics_env = portal_metrics_env(settings.VAR_DIR)
    mode = "embedded (SQLite, no Redis)" if settings.EMBEDDED else "PostgreSQL + Redis"
    print(f"OpsPortal: database and broker mode: {mode}", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    created = seed_demo()
    if created:
        print("\nDemo users (passwords are shown only this once):")
        for username, password in created.items():
            print(f"  {username:6} {password}")
        print()
    if port_open(PORT, HOST):
        print(f"Port {PORT} is taken: stop what runs there or set OPSPORTAL_PORT.", file=sys.stderr)
        return 1
    env = dict(os.environ)
    pipeline = None
    prometheus = None
    alertmanager = None
    grafana = None
    alert_standins = None
    apollo = None
    eureka = None
    kafka = None
    log_pipelines = None
    if os.environ.get("OPSPORTAL_SANDBOX", "1") != "0":
        from sandbox import services

        pipeline = services.start_pipeline(settings.VAR_DIR / "sandbox")
        env.update(pipeline.settings())
        print(
            f"Sandbox: GitLab {pipeline.gitlab.url}, Jenkins {pipeline.jenkins.url}, "
            f"registry {pipeline.registry.url}",
            flush=True,
        )
        bases = ", ".join(f"{language} {image}" for language, image in pipeline.base_images.items())
        print(f"Sandbox: base images (OPSPORTAL_BASE_IMAGES) {bases}", flush=True)
        helper = pipeline.prestop_helper_image or "not built (gcc missing)"
        print(f"Sandbox: preStop helper image (OPSPORTAL_PRESTOP_HELPER_IMAGE) {helper}", flush=True)
        kube_dir = None
        # Before the cluster: its registration hands the Eureka server the pods' gateway.
        eureka = services.SandboxEureka(settings.VAR_DIR / "sandbox" / "eureka")
        eureka.start()
        # Before the cluster too: its pods' gateway adds the broker's listener for pods (one restart).
        log_pipelines = services.SandboxLogPipelines(settings.VAR_DIR / "sandbox" / "logpipeline")
        kafka = services.SandboxKafka(
            settings.VAR_DIR / "sandbox" / "kafka", on_pods_listener=log_pipelines.kafka_serves_pods
        )
        if kafka.start() is not None:
            print(f"Sandbox: Kafka starting on {kafka.bootstrap} (in the background, about 10 s)", flush=True)
        if not os.environ.get("GRAFANA_URL"):
            grafana = start_grafana(settings.VAR_DIR / "sandbox" / "grafana")
            env.update({"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": grafana.token})
            print(f"Sandbox: Grafana stand-in {grafana.url} (dashboards at /d/<uid>/)", flush=True)
        if not services.real_clusters_configured():
            kube_dir = settings.VAR_DIR / "kube"
            env["SANDBOX_KUBE_DIR"] = str(kube_dir)
            env["OPSPORTAL_DEV_CLUSTER_STATUS"] = "sandbox.kube.cluster.dev_cluster_status"

            def on_ready(kubeconfig: str, server: str) -> None:
                services.register_clusters(kubeconfig, server)
                gateway = read_state(kube_dir).pod_gateway
                eureka.cluster_ready(gateway)
                log_pipelines.cluster_ready(kubeconfig, gateway)  # before Kafka's restart calls it back
                kafka.cluster_ready(gateway)
                if prometheus is not None:
                    # The pod agent's exporter is known now, and the clusters exist: both change the config.
                    prometheus[0].write_base()
                    apply_prometheus_config(env, "sandbox clusters registered")

            services.start_cluster(kube_dir, on_ready=on_ready, registries=[pipeline.registry.host])
            print(
                "Sandbox: starting the local Kubernetes control plane in the background "
                "(the first build takes several minutes; progress on the Clusters page).",
                flush=True,
            )
        if not os.environ.get("APOLLO_PORTAL_URL"):  # an Apollo portal of your own wins
            apollo = services.ApolloService(settings.VAR_DIR / "sandbox" / "apollo")
            env.update(apollo.start())
            print(apollo.describe(), flush=True)
            from sandbox.seed import seed_apollo_settings

            if seeded := seed_apollo_settings(token=apollo.token, envs=services.APOLLO_DEMO_ENVS):
                print(f"Sandbox: Apollo settings of {', '.join(seeded)} point at the stand-in", flush=True)
        if not os.environ.get("DINGTALK_WEBHOOK_BASE"):  # receivers of your own win
            alert_standins = services.AlertStandins()
            env.update(alert_standins.start())
            print(alert_standins.describe(), flush=True)
        # Before Prometheus: the configuration the portal applies to Prometheus may name it.
        if not os.environ.get("ALERTMANAGER_URL"):  # an Alertmanager of your own wins
            alertmanager = services.start_alertmanager(settings.VAR_DIR, portal_url=f"http://{HOST}:{PORT}")
        if alertmanager is not None:
            env.update(alertmanager[1])
            print(f"Sandbox: Alertmanager {alertmanager[0].url}", flush=True)
        if not os.environ.get("PROMETHEUS_URL"):  # a Prometheus of your own wins
            prometheus = services.start_prometheus(
                settings.VAR_DIR, portal_url=f"http://{HOST}:{PORT}", kube_dir=kube_dir
            )
        if prometheus is not None:
            env.update(prometheus[1])
            print(f"Sandbox: Prometheus {prometheus[0].url}", flush=True)
            apply_prometheus_config(env, "make run started")

    log_dir = settings.VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    env.update(metrics_env)
    forget_metrics = partial(_metrics_process_dead, Path(env["PROMETHEUS_MULTIPROC_DIR"]))
    python = sys.executable
    web = Supervised(
        "web server",
        [python, "-m", "daphne", "-b", HOST, "-p", str(PORT), "opsportal.asgi:application"],
        log=log_dir / "web.log",
        env=env,
        cwd=BASE_DIR,
        on_exit=forget_metrics,
    )
    worker = Supervised(
        "worker",
        [
            python,
            "-m",
            "celery",
            "-A",
            "opsportal",
            "worker",
            "--beat",
            "--loglevel",
            "INFO",
            # Threads, as in docker-compose.yml: a killed prefork child can wedge its replacements.
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--schedule",
            str(settings.VAR_DIR / "celerybeat-schedule"),
        ],
        log=log_dir / "worker.log",
        env=env,
        cwd=BASE_DIR,
        on_exit=forget_metrics,
    )
    children = [web, worker]
    for child in children:
        child.start()
    stopping = False

    def shutdown(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        wait_for(
            lambda: port_open(PORT, HOST),
            timeout=60,
            what="The web server",
            proc=web.proc,
            log=log_dir / "web.log",
        )
        print(
            f"OpsPortal is up: http://{HOST}:{PORT}/   (logs in {log_dir}; Ctrl-C stops everything)",
            flush=True,
        )
        while not stopping:
            if not all(child.check() for child in children):
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all([child.proc for child in children if child.proc is not None])
        if prometheus is not None:
            prometheus[0].stop()
        if alertmanager is not None:
            alertmanager[0].stop()
        if alert_standins is not None:
            alert_standins.stop()
        if pipeline is not None:
            pipeline.stop()
        if grafana is not None:
            grafana.stop()
        if apollo is not None:
            apollo.stop()
        if eureka is not None:
            eureka.stop()
        if kafka is not None:
            kafka.stop()
        if log_pipelines is not None:
            log_pipelines.stop()
        (settings.VAR_DIR / "run.pid").unlink(missing_ok=True)
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
