"""The preStop hook's static HTTP client (deploys/prestop/http-post.c), built the way the sandbox's helper
image builds it (sandbox/images/rootfs.sh prestop-helper)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.standins import require_tools

ROOTFS_SH = Path(__file__).resolve().parents[2] / "sandbox" / "images" / "rootfs.sh"
HELPER_IN_IMAGE = "opt/opsportal/bin/http-post"


def build_http_post(directory: Path) -> Path:
    require_tools("gcc")
    done = subprocess.run(
        ["bash", str(ROOTFS_SH), "build", "prestop-helper", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return directory / HELPER_IN_IMAGE
