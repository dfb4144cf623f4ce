"""Launcher for Debian's real Alertmanager (``/usr/bin/prometheus-alertmanager``) on loopback.

Files under ``root``: ``alertmanager.yml`` (one route to one webhook receiver: the portal's
``POST /api/alerts/alertmanager``), ``webhook.token`` (the bearer token the receiver sends, read by
Alertmanager from that file so it never appears in the configuration its API shows), ``data/`` (silences
and the notification log) and ``alertmanager.log``. No gossip: ``--cluster.listen-address=`` is empty.
"""

from __future__ import annotations

import os
import secrets
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from sandbox.procs import ReadyServer, free_port

DEFAULT_BINARY = "/usr/bin/prometheus-alertmanager"
READY_TIMEOUT_SECONDS = 30.0
RECEIVER_PATH = "/api/alerts/alertmanager"


class AlertmanagerError(RuntimeError):
    pass


def find_binary() -> str | None:
    """Alertmanager: $SANDBOX_ALERTMANAGER_BIN, Debian's binary, or ``alertmanager`` on PATH."""
    candidates = [os.environ.get("SANDBOX_ALERTMANAGER_BIN", ""), DEFAULT_BINARY, "alertmanager"]
    return next((found for c in candidates if c and (found := shutil.which(c))), None)


def webhook_token(var_dir: Path | str) -> str:
    """The sandbox's ALERTMANAGER_WEBHOOK_TOKEN: generated once under ``var_dir`` and kept, so a restarted
    portal and Alertmanager agree."""
    path = Path(var_dir) / "alertmanager_webhook_token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def render_config(
    *,
    portal_url: str,
    token_file: Path | str,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
) -> dict:
    """One route grouping by project, environment and alert name, to the portal's webhook receiver with
    resolved notifications and every alert of a group in one post (``max_alerts: 0``)."""
    return {
        "route": {
            "receiver": "portal",
            "group_by": ["project", "env", "alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "portal",
                "webhook_configs": [
                    {
                        "url": portal_url.rstrip("/") + RECEIVER_PATH,
                        "send_resolved": True,
                        "max_alerts": 0,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            }
        ],
    }


class AlertmanagerServer(ReadyServer):
    """Run Alertmanager on ``127.0.0.1:<port>`` (a free one unless given) with its files under ``root``.

    ``start()`` returns the base URL once ``GET /-/ready`` answers 200. ``configure()`` rewrites the
    configuration (another portal URL or token, other intervals) and reloads it."""

    what = "Alertmanager"
    error = AlertmanagerError
    ready_timeout = READY_TIMEOUT_SECONDS

    def __init__(
        self,
        root: Path | str,
        *,
        portal_url: str,
        token: str,
        port: int = 0,
        binary: str | None = None,
        group_wait: str = "30s",
        group_interval: str = "5m",
        repeat_interval: str = "4h",
    ) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.binary = binary
        self.portal_url = portal_url
        self.token = token
        self.intervals = {
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.root / "alertmanager.yml"

    @property
    def token_file(self) -> Path:
        return self.root / "webhook.token"

    @property
    def log_file(self) -> Path:
        return self.root / "alertmanager.log"

    def write_config(self) -> dict:
        self.root.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        config = render_config(portal_url=self.portal_url, token_file=self.token_file, **self.intervals)
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        return config

    def start(self) -> str:
        binary = self.binary or find_binary()
        if binary is None:
            raise AlertmanagerError("alertmanager not found: apt-get install prometheus-alertmanager")
        if not self.port:
            self.port = free_port()
        self.write_config()
        args = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",  # a single instance: no gossip port
            "--log.level=warn",
        ]
        self.launch(args, log=self.log_file, cwd=self.root)
        return self.url

    def configure(self, *, portal_url: str | None = None, token: str | None = None, **intervals: str) -> None:
        """Rewrite the configuration and make the running Alertmanager load it (``POST /-/reload``)."""
        unknown = set(intervals) - set(self.intervals)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        self.portal_url = portal_url or self.portal_url
        self.token = token if token is not None else self.token
        self.intervals.update(intervals)
        self.write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback http
                if resp.status != 200:
                    raise AlertmanagerError(f"reload answered {resp.status}")
        except urllib.error.HTTPError as exc:
            raise AlertmanagerError(f"reload failed: {exc.read().decode(errors='replace')}") from exc
