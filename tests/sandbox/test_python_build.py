"""A Python service of this repository, built by the portal's python recipe through the sandbox pipeline and
run as a real pod.

The package is pushed to the GitLab stand-in as a project of its own (``SandboxPipeline.add_python_package``,
which ``add_logproxy`` uses for ``ops/logproxy``). The Jenkins stand-in runs the python recipe's build shell,
whose ``pip wheel`` reads only the local wheelhouse (``PIP_NO_INDEX``/``PIP_FIND_LINKS`` from
sandbox/wheelhouse), and build_image.sh builds the generic Dockerfile FROM the python base image, installing
the wheels with the image's own pip, offline, in a stage of their own. The image then runs in the sandbox
cluster with the command the portal sets in its Deployment, Ready on a tcpSocket probe, and answers PING on
its pod IP from the host.

Until the log proxy lands, the service is a stand-in (tests/sandbox/pyping: a RESP server answering PING,
parsing with hiredis, a compiled wheel).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from sandbox import wheelhouse
from sandbox.pipeline import SandboxPipeline
from tests.fixtures.ci import unavailable
from tests.fixtures.kube import KubeCluster
from tests.fixtures.standins import require, require_tools
from tests.helpers.demo_builds import build_with_recipe, inspect_config, last_layer_files
from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.standins]

PACKAGE = Path(__file__).resolve().parent / "pyping" / "pyping"
REPOSITORY = "ops/pyping"
COMMAND = ["python", "-m", "pyping"]
SERVICE_PORT = 6379
VERSION = "v1.0.0"


@dataclass
class Built:
    image: str  # pinned by digest
    digest: str
    console: str
    seconds: float
    pipeline: SandboxPipeline


@pytest.fixture(scope="module")
def python_build(demo_pipeline: SandboxPipeline) -> Built:
    require_tools("git", "buildah", "skopeo")
    requirements = PACKAGE / "requirements.txt"
    if not wheelhouse.ready(requirements):
        unavailable(f"the wheelhouse of {requirements} is missing; {wheelhouse.HOW_TO_BUILD}")
    require("python" in demo_pipeline.base_images, "the python base image (see sandbox/images)")
    demo_pipeline.add_python_package(REPOSITORY, PACKAGE)
    image = f"{demo_pipeline.registry.host}/{REPOSITORY}:{VERSION}"
    image, console, seconds = build_with_recipe(
        demo_pipeline, REPOSITORY, "python", VERSION, image, job="pyping-build"
    )
    print(f"{REPOSITORY}: tag-to-pushed build through Jenkins took {seconds:.1f} s")
    pushed = re.search(rf"^pushed {re.escape(image)}@(sha256:[0-9a-f]{{64}})$", console, re.M)
    assert pushed, console[-3000:]
    return Built(f"{image.rsplit(':', 1)[0]}@{pushed[1]}", pushed[1], console, seconds, demo_pipeline)


def test_the_python_recipe_installs_the_wheelhouse_offline_on_the_python_base(python_build: Built) -> None:
    console = python_build.console
    house = wheelhouse.path_for(PACKAGE / "requirements.txt")
    # The build shell's pip read the local wheelhouse and nothing else.
    assert f"Looking in links: {house}" in console, console[-3000:]
    assert re.search(r"Saved \S*wheels/hiredis-3\.5\.0-cp\d+-\S+\.whl", console), console[-3000:]
    assert "pypi.org" not in console and "Downloading" not in console
    base = python_build.pipeline.base_images["python"]
    assert f"pulling base image {base}" in console
    assert console.count(f"pulling base image {base}") == 1  # two stages start from it; fetched once

    config = inspect_config(python_build.image)
    base_config = inspect_config(base)
    env = config["config"]["Env"]
    assert "PATH=/opt/python/bin:/bin" in env and "PYTHONPATH=/opt/deps" in env
    assert config["config"].get("User") == "65534:65534"
    assert config["config"].get("WorkingDir") == "/app"
    base_layers = base_config["rootfs"]["diff_ids"]
    assert config["rootfs"]["diff_ids"][: len(base_layers)] == base_layers

    files = last_layer_files(python_build.pipeline.registry.url, REPOSITORY, python_build.digest)
    # The installed package (its compiled module included), the sources, the preStop helper; no wheels.
    assert any(re.fullmatch(r"opt/deps/hiredis/hiredis\.cpython-\d+-x86_64-linux-gnu\.so", f) for f in files)
    assert {"app/pyping/__main__.py", "app/requirements.txt", "opt/opsportal/bin/http-post"} <= files
    assert not [f for f in files if f.endswith(".whl") or f.startswith("app/wheels")]


def _ready(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, namespace)
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod if ready else None


def _ask(address: str, request: bytes) -> bytes:
    with socket.create_connection((address, SERVICE_PORT), timeout=5) as conn:
        conn.sendall(request)
        answer = b""
        while answer.count(b"\r\n") < request.count(b"*"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def test_the_image_runs_as_a_pod_ready_on_its_port_and_answers_ping(
    python_build: Built, kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_cluster.api_client)
    name = "pyping"
    probe = {"tcpSocket": {"port": SERVICE_PORT}, "periodSeconds": 1, "timeoutSeconds": 1}
    core.create_namespaced_pod(
        kube_namespace,
        {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": python_build.image,
                        # What the portal sets in the proxy's Deployment; the recipe's CMD is a default.
                        "command": COMMAND,
                        "env": [{"name": "PORT", "value": str(SERVICE_PORT)}],
                        "ports": [{"containerPort": SERVICE_PORT}],
                        "readinessProbe": probe,
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                    }
                ]
            },
        },
    )
    log_file = kube_cluster.cluster.workdir / "pods" / kube_namespace / name / "app.log"
    try:
        pod = until(f"{name} to be Ready", lambda: _ready(core, kube_namespace, name), 120)
    except AssertionError as exc:
        status = core.read_namespaced_pod(name, kube_namespace).status
        log = log_file.read_text() if log_file.exists() else "(no log)"
        raise AssertionError(f"{exc}\n{status.container_statuses}\n{log[-3000:]}") from None
    assert pod.status.pod_ip.startswith("10.0."), pod.status.pod_ip
    answer = _ask(pod.status.pod_ip, b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    assert answer == b"+PONG\r\n-ERR unknown command\r\n"
    log = log_file.read_text()
    # Unbuffered stdout (the recipe's PYTHONUNBUFFERED) and the compiled wheel imported in the pod.
    assert f"pyping listening on {SERVICE_PORT} (hiredis 3.5.0)" in log
    assert pod.spec.containers[0].command == COMMAND
