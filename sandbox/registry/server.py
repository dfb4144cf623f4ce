"""Launcher for the real CNCF distribution registry (Debian's ``docker-registry``) on loopback."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from sandbox.procs import free_port

DEFAULT_BINARY = "/usr/bin/docker-registry"
_READY_TIMEOUT_SECONDS = 20.0


class RegistryError(RuntimeError):
    pass


def find_binary() -> str | None:
    """The registry binary: $SANDBOX_REGISTRY_BIN, /usr/bin/docker-registry, or ``registry`` on PATH."""
    candidates = [os.environ.get("SANDBOX_REGISTRY_BIN", ""), DEFAULT_BINARY, "docker-registry", "registry"]
    return next((found for c in candidates if c and (found := shutil.which(c))), None)


def _die_with_parent() -> None:
    # Runs in the child before exec: if the launching process dies without stop() (a killed test run),
    # the kernel terminates the registry instead of leaving it bound to the port.
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class RegistryServer:
    """Run ``docker-registry serve`` with filesystem storage under ``root``, deletes enabled and no auth.

    ``start()`` returns the base URL (``http://127.0.0.1:PORT``) once ``GET /v2/`` answers 200;
    ``host`` is the ``HOST:PORT`` form image references and ``buildah push docker://`` need.
    """

    def __init__(
        self, root: Path | str, port: int = 0, host: str = "127.0.0.1", binary: str | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.bind_host = host
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"{self.bind_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def write_config(self) -> Path:
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": self.host, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        path = self.root / "config.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> str:
        binary = self.binary or find_binary()
        if binary is None:
            raise RegistryError("docker-registry not found: apt-get install docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.bind_host)
        config = self.write_config()
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        log.close()
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = (self.root / "registry.log").read_text(errors="replace")[-2000:]
                raise RegistryError(f"registry exited with {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as resp:  # noqa: S310 - fixed http URL
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RegistryError(
            f"registry did not answer GET {self.url}/v2/ within {_READY_TIMEOUT_SECONDS:.0f}s"
        )

    def serve_forever(self) -> None:
        if self.process is None:
            self.start()
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
