"""Web terminal benchmark: keystroke round trip and bulk output, through the portal vs ``kubectl exec``.

    python -m sandbox.testenv -- .venv/bin/python -m bench terminal

Starts a local control plane (kwok), a scratch database, and Daphne; opens the portal's terminal
WebSocket as the browser does and, on the same pod, ``kubectl exec -it`` in a local pty. Prints a
table and writes docs/bench-terminal.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

KEYSTROKES = 200
BULK_COMMAND = "head -c 20000000 /dev/zero | base64; echo DONE-$((40+2))"
MARKER = b"DONE-42"
KUBECTL = "/usr/bin/kubectl"
POD = "bench-0"
BASE_DIR = Path(settings.BASE_DIR)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


class PortalTerminal:
    def __init__(self, base_url: str, cookie: str, namespace_env: str):
        host = base_url.split("//", 1)[1]
        self.ws = connect(
            f"ws://{host}/ws/terminal/bench/{namespace_env}/?pod={POD}&cols=200&rows=50",
            additional_headers={"Origin": base_url, "Cookie": f"sessionid={cookie}"},
            open_timeout=30,
            max_size=None,
        )
        while True:
            message = self.ws.recv(timeout=30)
            if isinstance(message, str):
                notice = json.loads(message)
                if notice["type"] == "ready":
                    break
                raise RuntimeError(notice)

    def send(self, text: str) -> None:
        self.ws.send(json.dumps({"type": "input", "data": text}))

    def read_until(self, needle: bytes, timeout: float = 120) -> int:
        seen, total = b"", 0
        deadline = time.monotonic() + timeout
        while needle not in seen:
            message = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(message, bytes):
                total += len(message)
                seen = (seen + message)[-4096:]
        return total

    def close(self) -> None:
        self.ws.close()


class KubectlTerminal:
    def __init__(self, kubeconfig: Path, namespace: str):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(  # noqa: S603
            [KUBECTL, "--kubeconfig", str(kubeconfig), "exec", "-it", "-n", namespace, POD, "--", "sh"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.send("echo READY-$((1+1))\r")
        self.read_until(b"READY-2", 60)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, needle: bytes, timeout: float = 120) -> int:
        seen, total = b"", 0
        deadline = time.monotonic() + timeout
        while needle not in seen:
            if not select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(needle)
            data = os.read(self.master, 65536)
            total += len(data)
            seen = (seen + data)[-4096:]
        return total

    def close(self) -> None:
        self.send("exit\r")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


def measure(term) -> dict:
    # At the shell prompt each character is echoed at once; Ctrl-U then discards the line.
    latencies = []
    for i in range(KEYSTROKES):
        char = "abcdefghij"[i % 10]
        start = time.perf_counter()
        term.send(char)
        term.read_until(char.encode(), 10)
        latencies.append((time.perf_counter() - start) * 1000)
        if i % 50 == 49:
            term.send("\x15")
            term.send("echo CLR-$((2+3))\r")
            term.read_until(b"CLR-5", 10)
    median, p95 = _percentiles(latencies)
    start = time.perf_counter()
    term.send(BULK_COMMAND + "\r")
    received = term.read_until(MARKER, 300)
    seconds = time.perf_counter() - start
    return {
        "median_ms": median,
        "p95_ms": p95,
        "bytes": received,
        "seconds": seconds,
        "mb_s": received / seconds / 1e6,
    }


def main() -> int:
    from clusters.models import Cluster, ProjectEnvironment
    from projects import services as project_services
    from sandbox.kube.cluster import LocalCluster
    from sandbox.procs import free_port, port_open, spawn, stop, wait_for
    from tests.fixtures.people import make_user
    from tests.integrations.kube_helpers import inline_kubeconfig

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=False)
    work = Path(tempfile.mkdtemp(prefix="opsportal-bench-"))
    cluster = LocalCluster(workdir=work / "kube", build_missing=True)
    daphne = None
    try:
        print("starting the control plane…", flush=True)
        cluster.start(timeout=240)
        from kubernetes import client as k8s

        core = k8s.CoreV1Api(cluster.api_client())
        namespace = "bench-test"
        core.create_namespace({"metadata": {"name": namespace}})
        deadline = time.monotonic() + 60
        while not core.list_namespaced_service_account(namespace).items:
            if time.monotonic() > deadline:
                raise RuntimeError("no default ServiceAccount")
            time.sleep(0.2)
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": POD, "labels": {"app.kubernetes.io/name": "bench"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/bench:1"}]},
            },
        )
        while core.read_namespaced_pod(POD, namespace).status.phase != "Running":
            time.sleep(0.2)

        ops = make_user("bench-ops", "ops")
        project = project_services.project_create(actor=ops, name="bench", owner=ops, language="go")
        db_cluster = Cluster.objects.create(
            name="bench-local",
            environment="test",
            api_url=cluster.server,
            auth_type="kubeconfig",
            credential=inline_kubeconfig(cluster.kubeconfig),
        )
        ProjectEnvironment.objects.create(
            project=project, environment="test", cluster=db_cluster, namespace=namespace
        )
        client = Client()
        client.force_login(ops)
        cookie = client.cookies["sessionid"].value

        db = settings.DATABASES["default"]
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        env.update(
            DJANGO_SETTINGS_MODULE="opsportal.settings_test",
            DATABASE_URL=(
                f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            ),
            TERMINAL_RECORDINGS_DIR=str(work / "recordings"),
        )
        port = free_port()
        daphne = spawn(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "opsportal.asgi:application",
            ],
            log=work / "daphne.log",
            env=env,
            cwd=BASE_DIR,
        )
        wait_for(lambda: port_open(port), timeout=60, what="Daphne", proc=daphne, log=work / "daphne.log")
        base_url = f"http://127.0.0.1:{port}"

        results = {}
        print("portal terminal…", flush=True)
        portal = PortalTerminal(base_url, cookie, "test")
        results["portal (browser WebSocket → Daphne → exec)"] = measure(portal)
        portal.close()
        print("kubectl exec…", flush=True)
        kubectl = KubectlTerminal(cluster.kubeconfig, namespace)
        results["kubectl exec -it"] = measure(kubectl)
        kubectl.close()
        report(results, work)
    finally:
        if daphne is not None:
            stop(daphne)
        cluster.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


def report(results: dict, work: Path) -> None:
    kubectl_version = subprocess.run(  # noqa: S603
        [KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    )
    try:
        kubectl_v = json.loads(kubectl_version.stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        kubectl_v = "unknown"
    header = "| path | keystroke RTT median (ms) | p95 (ms) | bulk output (MB) | time (s) | MB/s |"
    rows = [header, "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} | {r['bytes'] / 1e6:.1f} "
            f"| {r['seconds']:.2f} | {r['mb_s']:.1f} |"
        )
    table = "\n".join(rows)
    print(table)
    mem = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "?",
    )
    doc = f"""# Web terminal benchmark

Run by hand: `.venv/bin/python -m sandbox.testenv -- .venv/bin/python -m bench terminal` (not part of
pytest). It starts the local control plane (kwok: the exec runs a real local shell in a real pty),
a scratch PostgreSQL database and Daphne, then measures on the same pod:

- **keystroke round trip**: inside `cat`, send one character and wait for its echo, {KEYSTROKES} times;
- **bulk output**: `{BULK_COMMAND}` (about 27 MB of base64 lines), until the marker arrives.

The portal path is the browser's: WebSocket (JSON input messages, binary output frames) → Daphne →
the session's worker thread → the apiserver's exec WebSocket → kwok. Every byte is also written to
the session's asciicast recording. `kubectl exec -it` runs in a local pty.

## Results ({datetime.datetime.now(datetime.UTC).date().isoformat()})

Machine: {os.cpu_count()} CPUs (`nproc`), {int(mem) // 1024 // 1024 if mem != "?" else "?"} GiB RAM,
{platform.platform()}, Python {platform.python_version()}, kubectl {kubectl_v}, apiserver v1.34.4 (local).

{table}

Notes: one run; the portal's output includes JSON/WebSocket framing overhead and the recording write;
other test runs may have shared the machine.
"""
    target = BASE_DIR / "docs" / "bench-terminal.md"
    target.write_text(doc)
    print(f"wrote {target}")


if __name__ == "__main__":
    sys.exit(main())
