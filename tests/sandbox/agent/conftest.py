"""The busybox web image the agent tests run as real pods (one registry and build per test module)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.registry import RegistryServer, find_binary
from tests.fixtures.ci import unavailable
from tests.fixtures.kube import KubeCluster

BUILD_IMAGE_SH = Path(__file__).resolve().parents[3] / "sandbox" / "jenkins" / "build_image.sh"
DOCKERFILE = """\
FROM localhost/sandbox/busybox:latest
COPY www /www
ENV GREETING=from-image
ENV PATH=/bin
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


@pytest.fixture(scope="module")
def web_image(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if kube_cluster.cluster.pods_mode != "real":
        unavailable(f"the pod agent is not running real pods here: {kube_cluster.cluster.pods_reason}")
    for tool in ("buildah", "flock"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            unavailable(f"{tool} not installed")
    if find_binary() is None or not Path("/bin/busybox").is_file():
        unavailable("docker-registry and busybox-static are needed to build the test image")
    root = tmp_path_factory.mktemp("agent-image")
    registry = RegistryServer(root / "registry")
    registry.start()
    context = root / "context"
    (context / "www").mkdir(parents=True)
    (context / "www" / "index.html").write_text("hello from the pod\n")
    (context / "www" / "cgi-bin").mkdir()
    slow = context / "www" / "cgi-bin" / "slow"
    slow.write_text('#!/bin/sh\nsleep 2\nprintf "Content-Type: text/plain\\r\\n\\r\\nslow\\n"\n')
    slow.chmod(0o755)
    (context / "Dockerfile").write_text(DOCKERFILE)
    image = f"{registry.host}/agent/web:1"
    build = subprocess.run(
        ["bash", str(BUILD_IMAGE_SH), str(context), image],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "SANDBOX_BUILDAH_ROOT": str(root / "buildah"),
            "HOME": str(root),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    kube_cluster.cluster.allow_registry(registry.host)
    yield image
    registry.stop()
