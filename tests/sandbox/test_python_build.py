"""The log proxy (logproxy/), built by the portal's python recipe through the sandbox pipeline and run as a
real pod.

Its sources are pushed to the GitLab stand-in as ``ops/logproxy`` (``SandboxPipeline.add_logproxy``, the
``logproxy_repository`` fixture). The Jenkins stand-in runs the python recipe's build shell, whose
``pip wheel`` reads only the local wheelhouse (``PIP_NO_INDEX``/``PIP_FIND_LINKS`` from sandbox/wheelhouse),
and build_image.sh builds the generic Dockerfile FROM the python base image, installing the wheels with the
image's own pip, offline, in a stage of their own. The image then runs in the sandbox cluster with the
command the portal sets in its Deployment (``python -m logproxy``), Ready on a tcpSocket probe; from the
host, on its pod IP, it answers PING and pushes a line into a real Kafka through the pods' listener.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

import pytest
from kubernetes import client

from sandbox import wheelhouse
from sandbox.pipeline import LOGPROXY_PACKAGE, SandboxPipeline
from tests.fixtures.ci import unavailable
from tests.fixtures.kube import KubeCluster
from tests.fixtures.standins import require, require_tools
from tests.helpers.demo_builds import build_with_recipe, inspect_config, last_layer_files
from tests.helpers.kafka import consume, unique_topic
from tests.helpers.logproxy import command, read_replies
from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.standins]

REQUIREMENTS = LOGPROXY_PACKAGE / "requirements.txt"
COMMAND = ["python", "-m", "logproxy"]
SERVICE_PORT = 6379
VERSION = "v1.0.0"


@dataclass
class Built:
    image: str  # pinned by digest
    digest: str
    console: str
    seconds: float
    pipeline: SandboxPipeline
    repository: str


@pytest.fixture(scope="module")
def python_build(demo_pipeline: SandboxPipeline, logproxy_repository: str) -> Built:
    require_tools("git", "buildah", "skopeo")
    if not wheelhouse.ready(REQUIREMENTS):
        unavailable(f"the wheelhouse of {REQUIREMENTS} is missing; {wheelhouse.HOW_TO_BUILD}")
    require("python" in demo_pipeline.base_images, "the python base image (see sandbox/images)")
    image = f"{demo_pipeline.registry.host}/{logproxy_repository}:{VERSION}"
    image, console, seconds = build_with_recipe(
        demo_pipeline, logproxy_repository, "python", VERSION, image, job="logproxy-build"
    )
    print(f"{logproxy_repository}: tag-to-pushed build through Jenkins took {seconds:.1f} s")
    pushed = re.search(rf"^pushed {re.escape(image)}@(sha256:[0-9a-f]{{64}})$", console, re.M)
    assert pushed, console[-3000:]
    return Built(
        f"{image.rsplit(':', 1)[0]}@{pushed[1]}",
        pushed[1],
        console,
        seconds,
        demo_pipeline,
        logproxy_repository,
    )


def test_the_python_recipe_installs_the_wheelhouse_offline_on_the_python_base(python_build: Built) -> None:
    console = python_build.console
    house = wheelhouse.path_for(REQUIREMENTS)
    # The build shell's pip read the local wheelhouse and nothing else.
    assert f"Looking in links: {house}" in console, console[-3000:]
    for wheel in ("aiokafka-0.14.0-cp", "hiredis-3.5.0-cp", "prometheus_client-0.26.0-py3"):
        assert re.search(rf"Saved \S*wheels/{re.escape(wheel)}\S*\.whl", console), (wheel, console[-3000:])
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

    files = last_layer_files(python_build.pipeline.registry.url, python_build.repository, python_build.digest)
    # The installed packages (their compiled modules included), the sources, the preStop helper; no wheels.
    for module in ("hiredis/hiredis", "aiokafka/record/_crecords/default_records"):
        so = re.compile(rf"opt/deps/{module}\.cpython-\d+-x86_64-linux-gnu\.so")
        assert any(so.fullmatch(f) for f in files), module
    assert {"app/logproxy/__main__.py", "app/requirements.txt", "opt/opsportal/bin/http-post"} <= files
    assert not [f for f in files if f.endswith(".whl") or f.startswith("app/wheels")]


def _ready(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, namespace)
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod if ready else None


def _push(address: str) -> list[bytes]:
    """PING and one LPUSH, pipelined on one connection; the replies."""
    with socket.create_connection((address, SERVICE_PORT), timeout=10) as conn:
        conn.sendall(command("PING") + command("LPUSH", "svc", "a line from the host"))
        return read_replies(conn, 2, timeout=10)


def test_the_proxy_image_runs_as_a_pod_ready_on_its_port_and_pushes_to_kafka(
    python_build: Built, kube_cluster: KubeCluster, kube_namespace: str, kafka_server_factory
) -> None:
    network = kube_cluster.cluster.network
    if network is None:
        unavailable(f"no pod network here: {kube_cluster.cluster.pods_reason}")
    broker = kafka_server_factory(pod_gateway=network.gateway)
    topic = unique_topic()
    core = client.CoreV1Api(kube_cluster.api_client)
    name = "logproxy"
    probe = {"tcpSocket": {"port": SERVICE_PORT}, "periodSeconds": 1, "timeoutSeconds": 1}
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.pod_bootstrap, "LOGPROXY_DEFAULT_TOPIC": topic}
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
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "ports": [{"containerPort": SERVICE_PORT}],
                        "readinessProbe": probe,
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    }
                ]
            },
        },
    )
    log_file = kube_cluster.cluster.workdir / "pods" / kube_namespace / name / "app.log"

    def log() -> str:
        return log_file.read_text() if log_file.exists() else "(no log)"

    try:
        pod = until(f"{name} to be Ready", lambda: _ready(core, kube_namespace, name), 120)
    except AssertionError as exc:
        status = core.read_namespaced_pod(name, kube_namespace).status
        raise AssertionError(f"{exc}\n{status.container_statuses}\n{log()[-3000:]}") from None
    assert pod.status.pod_ip.startswith("10.0."), pod.status.pod_ip
    assert pod.spec.containers[0].command == COMMAND
    # Ready as soon as it listens; the producer may still be connecting, when a push gets -ERR (retried).
    replies = until(
        "PING and an acknowledged LPUSH on the pod IP",
        lambda: (r := _push(pod.status.pod_ip))[1] == b":1\r\n" and r,
        60,
    )
    assert replies[0] == b"+PONG\r\n"
    # The line went from the pod to the broker's pods' listener (aiokafka's compiled records in the image).
    [record, *_] = consume(broker.bootstrap, topic, 1)
    assert (record.key(), record.value()) == (b"svc", b"a line from the host")
    # Unbuffered stdout (the recipe's PYTHONUNBUFFERED): the proxy's start line is in the container's log.
    assert f"listening on 0.0.0.0:{SERVICE_PORT}" in log(), log()[-2000:]
