"""Acceptance tests against the real local control plane (etcd + kube-* + kwok); no mocks."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, watch
from kubernetes.stream import stream

from tests.fixtures.kube import KubeCluster, exec_output
from tests.polling import until

pytestmark = pytest.mark.kube

REVISION = "deployment.kubernetes.io/revision"
RESIZE_CHANNEL = 4


def watch_deployment(apps: client.AppsV1Api, namespace: str, name: str, done, timeout: int = 90):
    """Follow the Deployment through a watch until ``done(deployment)``; the first event is its state now."""
    w = watch.Watch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        remaining = max(1, int(deadline - time.monotonic()))
        for event in w.stream(
            apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=remaining,
        ):
            if done(event["object"]):
                w.stop()
                return event["object"]
    raise AssertionError(f"deployment {namespace}/{name} did not reach the expected state in {timeout}s")


def rollout_complete(d: client.V1Deployment) -> bool:
    """Same decision as ``kubectl rollout status``."""
    status = d.status
    if not status or (status.observed_generation or 0) < d.metadata.generation:
        return False
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            raise AssertionError(f"rollout failed: {condition.message}")
    updated = status.updated_replicas or 0
    return (
        updated >= d.spec.replicas
        and (status.replicas or 0) <= updated
        and (status.available_replicas or 0) >= updated
    )


def deployment_body(name: str, image: str, replicas: int = 3) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def running_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod:
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
        },
    )

    def ready():
        pod = core.read_namespaced_pod(name, namespace)
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        return pod if pod.status.phase == "Running" and conditions.get("Ready") == "True" else None

    return until(f"pod {namespace}/{name} Running and Ready", ready, 60)


def test_deployment_rollout_keeps_old_replicaset_revision(kube_cluster: KubeCluster, kube_namespace: str):
    apps = client.AppsV1Api(kube_cluster.api_client)
    ns = kube_namespace
    apps.create_namespaced_deployment(ns, deployment_body("web", "registry.local/web:1"))

    first = watch_deployment(apps, ns, "web", lambda d: (d.status.available_replicas or 0) == 3)
    assert first.status.ready_replicas == 3

    apps.patch_namespaced_deployment(
        "web",
        ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.local/web:2"}]}}}},
    )
    done = watch_deployment(apps, ns, "web", rollout_complete)
    assert done.status.available_replicas == 3
    assert done.metadata.annotations[REVISION] == "2"

    owned = [
        rs
        for rs in apps.list_namespaced_replica_set(ns, label_selector="app=web").items
        if any(ref.uid == done.metadata.uid and ref.controller for ref in rs.metadata.owner_references or [])
    ]
    by_revision = {rs.metadata.annotations[REVISION]: rs for rs in owned}
    assert set(by_revision) == {"1", "2"}
    old, new = by_revision["1"], by_revision["2"]
    assert old.spec.template.spec.containers[0].image == "registry.local/web:1"
    assert old.spec.replicas == 0
    assert new.spec.template.spec.containers[0].image == "registry.local/web:2"
    assert new.status.available_replicas == 3


def test_invalid_quantity_is_rejected_with_readable_causes(kube_cluster: KubeCluster, kube_namespace: str):
    apps = client.AppsV1Api(kube_cluster.api_client)

    def create_with_cpu(cpu: str) -> client.ApiException:
        body = deployment_body("bad", "registry.local/web:1", replicas=1)
        body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
        with pytest.raises(client.ApiException) as caught:
            apps.create_namespaced_deployment(kube_namespace, body)
        return caught.value

    # "1 core" is not a quantity at all, so the apiserver fails while decoding the body: a 400 BadRequest
    # whose message names the quantity syntax, without details.causes (verified against v1.34.4).
    unparsable = create_with_cpu("1 core")
    assert unparsable.status == 400
    status = json.loads(unparsable.body)
    assert status["reason"] == "BadRequest"
    assert "quantities must match the regular expression" in status["message"]

    # A well-formed but invalid quantity reaches validation: 422 Invalid with per-field causes.
    invalid = create_with_cpu("-1")
    assert invalid.status == 422
    status = json.loads(invalid.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "-1": must be greater than or equal to 0',
            "field": "spec.template.spec.containers[0].resources.requests[cpu]",
        }
    ]


def test_exec_runs_local_command_in_pod_workdir(kube_cluster: KubeCluster, kube_namespace: str):
    core = client.CoreV1Api(kube_cluster.api_client)
    running_pod(core, kube_namespace, "shell")

    assert exec_output(core, kube_namespace, "shell", ["echo", "hello"]) == "hello\n"

    # The cluster's pod agent gives each pod its own directory shortly after the pod appears.
    workdir = kube_cluster.cluster.workdir / "pods" / kube_namespace / "shell"
    until(
        "exec to run in the per-pod work directory",
        lambda: exec_output(core, kube_namespace, "shell", ["pwd"]) == f"{workdir}\n",
        60,
    )
    (workdir / "marker.txt").write_text("per-pod\n")
    assert exec_output(core, kube_namespace, "shell", ["cat", "marker.txt"]) == "per-pod\n"


def test_interactive_tty_accepts_input_and_resize(kube_cluster: KubeCluster, kube_namespace: str):
    core = client.CoreV1Api(kube_cluster.api_client)
    running_pod(core, kube_namespace, "tty")

    session = stream(
        core.connect_get_namespaced_pod_exec,
        "tty",
        kube_namespace,
        command=["sh"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=True,
        _preload_content=False,
    )
    try:
        session.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 91, "Height": 37}))
        # The resize travels on its own channel and is applied asynchronously (as by a kubelet), so a
        # command typed at once may still see the old size: ask again until the new size shows.
        output = ""
        deadline = time.monotonic() + 30
        for attempt in range(1, 31):
            session.write_stdin(f"stty size; echo done-$((6*{attempt}+1))\n")
            answered = f"done-{6 * attempt + 1}"
            while (
                answered not in output.replace(f"done-$((6*{attempt}+1))", "") and time.monotonic() < deadline
            ):
                session.update(timeout=1)
                output += session.read_stdout() if session.peek_stdout() else ""
            assert answered in output, output  # the shell took the input and answered
            if "37 91" in output or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "37 91" in output, output
        session.write_stdin("exit\n")
        until("tty session to end", lambda: (session.update(timeout=1), not session.is_open())[1], 30)
    finally:
        session.close()


def test_pod_logs_return_configured_content(kube_cluster: KubeCluster, kube_namespace: str):
    core = client.CoreV1Api(kube_cluster.api_client)
    running_pod(core, kube_namespace, "logger")
    kube_cluster.cluster.set_pod_logs(kube_namespace, "logger", ["starting app", "listening on :8080"])

    logs = until(
        "configured pod logs",
        lambda: (r if "listening" in (r := core.read_namespaced_pod_log("logger", kube_namespace)) else None),
        60,
    )
    assert logs == "starting app\nlistening on :8080\n"
    tail = core.read_namespaced_pod_log("logger", kube_namespace, tail_lines=1)
    assert tail == "listening on :8080\n"


def test_deployment_watch_delivers_added_and_modified(kube_cluster: KubeCluster, kube_namespace: str):
    apps = client.AppsV1Api(kube_cluster.api_client)
    ns = kube_namespace
    since = apps.list_namespaced_deployment(ns).metadata.resource_version
    apps.create_namespaced_deployment(ns, deployment_body("watched", "registry.local/web:1", replicas=1))

    seen: list[str] = []
    w = watch.Watch()
    for event in w.stream(apps.list_namespaced_deployment, ns, resource_version=since, timeout_seconds=60):
        assert event["object"].metadata.name == "watched"
        seen.append(event["type"])
        if "ADDED" in seen and "MODIFIED" in seen:
            w.stop()
    assert seen[0] == "ADDED"
    assert "MODIFIED" in seen
