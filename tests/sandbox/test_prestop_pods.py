"""The portal's preStop hook in real pods, in an image that has neither curl nor wget.

The image is built the way a release builds it: the go recipe's generic Dockerfile (deploys/recipes.py),
with the preStop helper's stage from the sandbox's helper image, FROM a busybox base whose wget was
removed. Its "application" is busybox httpd with a CGI standing in for Spring's /actuator/serviceregistry
that writes what it is sent to the container's log. The pod spec is the portal's rendered Deployment
template, so the hook, its wait and the grace period are exactly what the portal applies; the pod agent
runs the hook, then SIGTERM, as the kubelet does (and records FailedPreStopHook as it does).
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from clusters.workload.manifests import render, stop_budget
from deploys.recipes import DEFAULT_RECIPES, render_dockerfile
from sandbox.images import PRESTOP_HELPER, push
from sandbox.registry import RegistryServer, find_binary
from tests.fixtures.ci import unavailable
from tests.fixtures.kube import KubeCluster, exec_output
from tests.fixtures.standins import BUILD_IMAGE_SH, require_tools
from tests.helpers.prestop import ROOTFS_SH
from tests.helpers.workload import make
from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.standins]

# The application: httpd serves /healthz and a CGI that logs the request it gets (on httpd's stderr, which
# is the container's).
APP = r"""#!/bin/sh
mkdir -p /tmp/www/cgi-bin
echo '{"status":"UP"}' > /tmp/www/healthz
cat > /tmp/www/cgi-bin/serviceregistry <<'CGI'
#!/bin/sh
body=$(head -c "${CONTENT_LENGTH:-0}")
echo "registry $REQUEST_METHOD $body" >&2
printf 'Content-Type: application/json\r\n\r\n{}'
CGI
chmod 755 /tmp/www/cgi-bin/serviceregistry
trap 'echo "got TERM"; kill $pid; exit 0' TERM
httpd -f -p 8080 -h /tmp/www & pid=$!
echo started
wait $pid
"""
NO_WGET_BASE = """FROM scratch
COPY rootfs /
ENV PATH=/bin
CMD ["/bin/sh"]
"""


def _build(context: Path, image: str, buildah_root: Path) -> None:
    done = subprocess.run(
        ["bash", str(BUILD_IMAGE_SH), str(context), image],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "SANDBOX_BUILDAH_ROOT": str(buildah_root),
            "HOME": str(context),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def no_wget_image(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if kube_cluster.cluster.pods_mode != "real":
        unavailable(f"the pod agent is not running real pods here: {kube_cluster.cluster.pods_reason}")
    require_tools("buildah", "skopeo", "umoci", "gcc")
    if find_binary() is None:
        unavailable("docker-registry is needed for the test images")
    root = tmp_path_factory.mktemp("prestop-images")
    registry = RegistryServer(root / "registry")
    registry.start()
    try:
        helper = push(registry.host, PRESTOP_HELPER)

        base = root / "base"
        done = subprocess.run(
            ["bash", str(ROOTFS_SH), "build", "busybox", str(base / "rootfs")], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        (base / "rootfs" / "bin" / "wget").unlink()
        assert not list((base / "rootfs").rglob("curl"))
        (base / "Dockerfile").write_text(NO_WGET_BASE)
        base_image = f"{registry.host}/test/busybox-without-wget:1"
        _build(base, base_image, root / "buildah")

        app = root / "app"
        (app / "bin").mkdir(parents=True)
        (app / "bin" / "app").write_text(APP)
        (app / "bin" / "app").chmod(0o755)
        dockerfile = render_dockerfile(
            DEFAULT_RECIPES["go"]["dockerfile"],
            project="hook",
            port=8080,
            base=base_image,
            prestop_helper=helper,
        )
        (app / "Dockerfile").write_text(dockerfile)
        image = f"{registry.host}/test/hook:1"
        _build(app, image, root / "buildah")
        kube_cluster.cluster.allow_registry(registry.host)
        yield image
    finally:
        registry.stop()


@dataclass
class Line:
    at: datetime.datetime
    text: str


def _log(kube_cluster: KubeCluster, namespace: str, pod: str) -> list[Line]:
    """The container's log as the agent writes it (CRI lines: time, stream, tag, text)."""
    path = kube_cluster.cluster.workdir / "pods" / namespace / pod / "app.log"
    lines = []
    for raw in path.read_text().splitlines():
        stamp, _stream, _tag, text = raw.split(" ", 3)
        lines.append(Line(datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")), text))
    return lines


def _run_pod(core, namespace: str, name: str, image: str, deregister_path: str) -> dict:
    spec = make(
        project=name,
        environment="test",
        namespace=namespace,
        language="go",
        image=image,
        replicas=1,
        hpa_min=1,
        hpa_max=1,
        cpu_request="50m",
        memory_request="32Mi",
        health_path="/healthz",
        startup_seconds=5,
        eureka_enabled=True,
        eureka_deregister_path=deregister_path,
        # Small caches, so the stale window is 0 + 1 + 0 + 5 = 6 s.
        eureka_response_cache_seconds=0,
        registry_refresh_seconds=1,
        loadbalancer_cache_seconds=0,
    )
    deployment = next(o for o in render(spec).objects if o["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": name, **template["metadata"]}, "spec": template["spec"]}
    )
    until(
        f"{name} to be Ready",
        lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in (core.read_namespaced_pod(name, namespace).status.conditions or [])
        ),
        120,
    )
    return {"budget": stop_budget(spec), "spec": template["spec"]}


def _gone(core, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def _hook_events(core, namespace: str, name: str) -> list:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [e for e in events if e.reason == "FailedPreStopHook"]


def test_deleting_a_pod_marks_it_out_of_service_then_waits_the_stale_window_before_sigterm(
    kube_cluster: KubeCluster, kube_namespace: str, no_wget_image: str
) -> None:
    core = client.CoreV1Api(kube_cluster.api_client)
    pod = _run_pod(core, kube_namespace, "hook-ok", no_wget_image, "/cgi-bin/serviceregistry")
    budget = pod["budget"]
    assert (budget.stale_window, budget.sleep, budget.grace) == (6, 6, 5 + 6 + 30)
    assert pod["spec"]["terminationGracePeriodSeconds"] == budget.grace
    # Neither wget nor curl: only the helper the generic Dockerfile copied in.
    found = exec_output(
        core, kube_namespace, "hook-ok", ["sh", "-c", "command -v wget curl http-post; ls /opt/opsportal/bin"]
    )
    assert found.strip() == "http-post"

    core.delete_namespaced_pod("hook-ok", kube_namespace)
    until("the pod object to go", lambda: _gone(core, kube_namespace, "hook-ok"), budget.grace + 30)

    lines = _log(kube_cluster, kube_namespace, "hook-ok")
    # The hook's own copy of its message reaches the log where PID 1 runs as the container's user; in the
    # sandbox PID 1 is bubblewrap's reaper (root), so it may be missing here.
    texts = [line.text for line in lines if not line.text.startswith("opsportal preStop:")]
    assert texts == ["started", 'registry POST {"status":"OUT_OF_SERVICE"}', "got TERM"], texts
    marked, term = lines[[line.text for line in lines].index(texts[1])].at, lines[-1].at
    # The application still served the POST, and SIGTERM came only after the whole wait.
    assert (term - marked).total_seconds() >= budget.sleep - 0.5, (marked, term)
    assert _hook_events(core, kube_namespace, "hook-ok") == []


def test_a_failed_deregistration_still_waits_and_is_recorded_as_failed_prestop_hook(
    kube_cluster: KubeCluster, kube_namespace: str, no_wget_image: str
) -> None:
    core = client.CoreV1Api(kube_cluster.api_client)
    # No such endpoint, as /actuator/service-registry on a Spring Cloud since 2020.
    pod = _run_pod(core, kube_namespace, "hook-404", no_wget_image, "/cgi-bin/service-registry")
    budget = pod["budget"]
    started = datetime.datetime.now(datetime.UTC)
    core.delete_namespaced_pod("hook-404", kube_namespace)
    until("the pod object to go", lambda: _gone(core, kube_namespace, "hook-404"), budget.grace + 30)

    lines = _log(kube_cluster, kube_namespace, "hook-404")
    assert [line.text for line in lines if not line.text.startswith("opsportal preStop:")] == [
        "started",
        "got TERM",
    ]
    assert (lines[-1].at - started).total_seconds() >= budget.sleep - 0.5
    events = until("the FailedPreStopHook event", lambda: _hook_events(core, kube_namespace, "hook-404"), 30)
    # The kubelet's event leaves the hook's output out (it may hold secrets); its own log has the cause.
    assert [(e.type, e.message, e.source.component) for e in events] == [
        ("Warning", "PreStopHook failed", "kubelet")
    ]
    agent_log = (kube_cluster.cluster.logs_dir / "pod-agent.log").read_text()
    url = "http://127.0.0.1:8080/cgi-bin/service-registry"
    assert f"{kube_namespace}/hook-404 app: PreStop hook failed: command" in agent_log
    assert (
        f"opsportal preStop: de-registration failed (POST {url}): http-post: POST {url}: answered:"
        in agent_log
    )
    assert "404 Not Found; waiting 6 s before SIGTERM all the same" in agent_log
