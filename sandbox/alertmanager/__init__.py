"""Debian's real Alertmanager, launched on loopback for `make run` and the tests (see docs/sandbox.md)."""

from sandbox.alertmanager.server import (
    AlertmanagerError,
    AlertmanagerServer,
    find_binary,
    render_config,
    webhook_token,
)

__all__ = ["AlertmanagerError", "AlertmanagerServer", "find_binary", "render_config", "webhook_token"]
