"""The demo services (sandbox/demo_repos) as real processes on 127.0.0.1, for the tests that need one:
start a service on a free port and wait until it listens; build go-hello and java-hello with their recipes'
commands; php-hello's server command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.procs import free_port, port_open
from tests.fixtures.standins import DEMO_REPOS, GO_BIN, require_go, require_tools
from tests.polling import until


@dataclass
class Service:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict]:
        """Every stdout line must be one JSON object (the plain heap line of java-hello aside)."""
        lines = []
        for raw in self.log.read_text().splitlines():
            if raw.startswith("java-hello: max heap"):
                continue
            lines.append(json.loads(raw))
        return lines

    def requests_logged(self) -> list[dict]:
        return [line for line in self.log_lines() if line.get("msg") == "request"]

    def terminate(self, timeout: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def start(argv: list[str], tmp_path: Path, env: dict[str, str], *, name: str, wait: bool = True) -> Service:
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "PORT": str(port), **env},
            stdout=out,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
            start_new_session=True,  # sandbox.procs.stop signals the process group
        )
    service = Service(proc, port, log)
    if wait:
        until(f"{name} to listen", lambda: proc.poll() is None and port_open(port) or proc.poll() is not None)
        assert proc.poll() is None, log.read_text()
    return service


def build_go_hello(tmp_path_factory) -> Path:
    require_go()
    out = tmp_path_factory.mktemp("go-hello") / "app"
    # The go recipe's own command (deploys/recipes.py), from a copy: the repository stays clean.
    src = tmp_path_factory.mktemp("go-src") / "src"
    shutil.copytree(DEMO_REPOS / "go-hello", src)
    subprocess.run(
        [GO_BIN, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."],
        cwd=src,
        env={**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"},
        check=True,
        timeout=300,
    )
    return out


def build_java_hello(tmp_path_factory) -> Path:
    require_tools("mvn", "java")
    src = tmp_path_factory.mktemp("java-src") / "src"
    shutil.copytree(DEMO_REPOS / "java-hello", src)
    # The java recipe's command (deploys/recipes.py); Maven's plugins come from Maven Central (~/.m2 after).
    done = subprocess.run(
        ["mvn", "-B", "-q", "-DskipTests", "package"], cwd=src, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return src / "target" / "java-hello.jar"


def php_server(tmp_path: Path, *, workers: int = 0) -> tuple[list[str], dict[str, str]]:
    require_tools("php")
    # The php base image's command (sandbox/images): PHP's built-in server over the repository's files.
    argv = ["sh", "-c", 'exec php -q -S "127.0.0.1:$PORT" -t "$DOCROOT"']
    env = {"METRICS_FILE": str(tmp_path / "metrics.json"), "DOCROOT": str(DEMO_REPOS / "php-hello")}
    if workers:
        env["PHP_CLI_SERVER_WORKERS"] = str(workers)
    return argv, env
