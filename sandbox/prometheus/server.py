"""Launcher for Debian's real Prometheus (``/usr/bin/prometheus``) on loopback, for `make run` and the tests.

Files under ``root``: ``prometheus.yml`` (the configuration Prometheus loads; the portal later replaces it
with its generated one), ``base.yml`` (the sandbox's own jobs, which the portal's config extends:
``PROMETHEUS_CONFIG_BASE``), ``rules/`` (the portal's alert rule files), ``data/`` (the TSDB, short
retention) and ``prometheus.log``.
Every scrape target stays on 127.0.0.0/8: the sandbox never lets Prometheus reach past loopback.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
from pathlib import Path

import yaml

from sandbox.procs import ReadyServer, free_port

DEFAULT_BINARY = "/usr/bin/prometheus"
DEFAULT_PROMTOOL = "/usr/bin/promtool"
SCRAPE_INTERVAL_SECONDS = 5
READY_TIMEOUT_SECONDS = 30.0


class PrometheusError(RuntimeError):
    pass


def find_binary() -> str | None:
    """Prometheus: $SANDBOX_PROMETHEUS_BIN, /usr/bin/prometheus, or ``prometheus`` on PATH."""
    candidates = [os.environ.get("SANDBOX_PROMETHEUS_BIN", ""), DEFAULT_BINARY, "prometheus"]
    return next((found for c in candidates if c and (found := shutil.which(c))), None)


def find_promtool() -> str | None:
    candidates = [os.environ.get("SANDBOX_PROMTOOL_BIN", ""), DEFAULT_PROMTOOL, "promtool"]
    return next((found for c in candidates if c and (found := shutil.which(c))), None)


def loopback_address(address: str) -> str:
    """``address`` ("127.0.0.1:PORT") when its host is on 127.0.0.0/8; ValueError otherwise."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a HOST:PORT address: {address!r}")
    if not ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).version != 4:
        raise ValueError(f"the sandbox Prometheus scrapes only 127.0.0.0/8, not {address!r}")
    return address


def exporter_address(kube_dir: Path | str | None) -> str | None:
    """The pod agent's metrics address from the local cluster's state file, or None.

    Read with getattr: the field is newer than some state files (and than some sandboxes)."""
    if kube_dir is None:
        return None
    from sandbox.kube.cluster import ClusterState

    state = ClusterState.read(Path(kube_dir))
    address = getattr(state, "exporter_address", "") if state is not None else ""
    return address or None


def base_config(*, self_address: str, exporter: str | None = None) -> dict:
    """The sandbox's own jobs: Prometheus itself, and the cluster's cAdvisor and kube-state-metrics
    series when the pod agent exports them (standard job names, as in a production Prometheus)."""
    jobs: list[dict] = [
        {"job_name": "prometheus", "static_configs": [{"targets": [loopback_address(self_address)]}]}
    ]
    if exporter:
        target = [{"targets": [loopback_address(exporter)]}]
        jobs.append({"job_name": "kubelet", "metrics_path": "/metrics/cadvisor", "static_configs": target})
        jobs.append(
            {
                "job_name": "kube-state-metrics",
                "metrics_path": "/metrics/kube-state",
                # Its series carry the pod's namespace/pod labels, which must win over the target's.
                "honor_labels": True,
                "static_configs": target,
            }
        )
    interval = f"{SCRAPE_INTERVAL_SECONDS}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }


def monitoring_token(var_dir: Path | str) -> tuple[str, Path]:
    """The sandbox's MONITORING_TOKEN and the file holding it (Prometheus reads it from there):
    generated once under ``var_dir`` and kept, so a restarted portal and Prometheus agree."""
    path = Path(var_dir) / "monitoring_token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)  # Prometheus runs as the same user here
    return path.read_text().strip(), path


class PrometheusServer(ReadyServer):
    """Run ``prometheus`` on ``127.0.0.1:<port>`` (a free one unless given) with its files under ``root``.

    ``start()`` returns the base URL once ``GET /-/ready`` answers 200. ``lifecycle=False`` starts it
    without ``--web.enable-lifecycle`` (``POST /-/reload`` then answers 403), to test a failing reload.
    ``kube_dir`` is the local cluster's directory: its pod agent's exporter becomes two base jobs.
    """

    what = "Prometheus"
    error = PrometheusError
    ready_timeout = READY_TIMEOUT_SECONDS

    def __init__(
        self,
        root: Path | str,
        *,
        port: int = 0,
        binary: str | None = None,
        lifecycle: bool = True,
        retention: str = "2h",
        kube_dir: Path | str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.binary = binary
        self.lifecycle = lifecycle
        self.retention = retention
        self.kube_dir = kube_dir

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def config_file(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def base_file(self) -> Path:
        return self.root / "base.yml"

    @property
    def rules_dir(self) -> Path:
        """The portal's alert rule files (PROMETHEUS_RULES_DIR), one per environment."""
        return self.root / "rules"

    @property
    def log_file(self) -> Path:
        return self.root / "prometheus.log"

    def write_base(self, *, exporter: str | None = None) -> dict:
        """(Re)write base.yml from what runs now: the cluster's exporter may have come up since.

        ``exporter`` ("127.0.0.1:PORT") overrides the address read from ``kube_dir``'s state file."""
        base = base_config(self_address=self.address, exporter=exporter or exporter_address(self.kube_dir))
        self.base_file.write_text(yaml.safe_dump(base, sort_keys=False))
        return base

    def start(self) -> str:
        binary = self.binary or find_binary()
        if binary is None:
            raise PrometheusError("prometheus not found: apt-get install prometheus")
        self.root.mkdir(parents=True, exist_ok=True)
        self.rules_dir.mkdir(exist_ok=True)
        if not self.port:
            self.port = free_port()
        # Always from the base: a previous run's generated file may name ports and files now gone; the
        # portal applies its own configuration over this one once it runs.
        self.config_file.write_text(yaml.safe_dump(self.write_base(), sort_keys=False))
        args = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address={self.address}",
            "--log.level=warn",
        ]
        if self.lifecycle:
            args.append("--web.enable-lifecycle")
        self.launch(args, log=self.log_file, cwd=self.root)
        return self.url
