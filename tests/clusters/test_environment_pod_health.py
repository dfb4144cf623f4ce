"""A crash-looping or OOMKilled pod is flagged on the environment page, its API and its live feed, with
the cause and the next step; the kubelet's warnings are shown with their counts.

The statuses are written on the real apiserver the way a kubelet writes them (status subresource),
the events through the core API."""

import time

import pytest
from django.urls import reverse
from kubernetes import client as k8s

from clusters.selectors.pod_health import crash_loop_cause, pod_problem
from tests.helpers.environments import pod_names, provision
from tests.helpers.kubelet import crash_loop_status, patch_status, warning_event

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def env(people, local_clusters):
    return provision(people, local_clusters["test"])


def _pod(kube_cluster, namespace, name) -> k8s.V1Pod:
    return k8s.CoreV1Api(kube_cluster.api_client).read_namespaced_pod(name, namespace)


def test_kwok_leaves_a_status_written_through_the_subresource_alone(env, kube_cluster):
    name = pod_names(kube_cluster, env.namespace)[0]
    patch_status(
        kube_cluster, env.namespace, name, crash_loop_status(_pod(kube_cluster, env.namespace, name))
    )
    time.sleep(3)  # several of kwok's reconcile rounds
    status = _pod(kube_cluster, env.namespace, name).status
    assert status.container_statuses[0].restart_count == 3
    assert status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert status.phase == "Running"


def test_the_page_flags_a_crash_loop_with_its_cause_and_the_warnings_with_counts(
    client, people, env, kube_cluster
):
    crashing, healthy = pod_names(kube_cluster, env.namespace)
    pod = _pod(kube_cluster, env.namespace, crashing)
    patch_status(kube_cluster, env.namespace, crashing, crash_loop_status(pod, restarts=4, exit_code=143))
    warning_event(
        kube_cluster,
        env.namespace,
        crashing,
        reason="Unhealthy",
        message='Startup probe failed: Get "http://10.0.1.7:8080/actuator/health": connection refused',
        count=7,
    )
    warning_event(
        kube_cluster,
        env.namespace,
        crashing,
        reason="Unhealthy",
        message="Startup probe failed: again",
        count=2,
    )
    warning_event(
        kube_cluster,
        env.namespace,
        crashing,
        reason="BackOff",
        message="Back-off restarting failed container",
        count=4,
    )
    warning_event(
        kube_cluster,
        env.namespace,
        crashing,
        reason="Killing",
        message="Container app failed startup probe, will be restarted",
        count=4,
    )

    client.force_login(people.viewer)
    response = client.get(reverse("environment-page", args=[env.project.name, env.environment]))
    html = response.content.decode()
    state = response.context["state"]
    flagged = {p["name"]: p for p in state["pods"]}
    problem = flagged[crashing]["problem"]
    assert (
        problem["reason"] == "CrashLoopBackOff" and problem["restarts"] == 4 and problem["exit_code"] == 143
    )
    assert problem["severity"] == "danger"
    assert "raise the start-up budget" in problem["hint"]  # the portal's pods have a start-up probe
    assert flagged[crashing]["state_reason"] == "CrashLoopBackOff"
    assert flagged[crashing]["last_termination"]["reason"] == "Error"
    assert flagged[crashing]["last_termination"]["exit_code"] == 143
    assert flagged[crashing]["last_termination"]["finished_at"]
    assert flagged[crashing]["ready"] is False and flagged[crashing]["restarts"] == 4
    assert flagged[healthy]["problem"] is None
    assert f'data-problem-for="{crashing}" data-reason="CrashLoopBackOff"' in html
    assert f'data-problem-for="{healthy}"' not in html
    assert "restarted 4 times" in html and "last exit 143" in html and "Error (exit 143)" in html
    warnings = {(w["pod"], w["reason"]): w for w in state["pod_warnings"]}
    assert warnings[(crashing, "Unhealthy")]["count"] == 9  # two events of one reason: their counts summed
    assert warnings[(crashing, "BackOff")]["count"] == 4
    assert warnings[(crashing, "Killing")]["count"] == 4
    assert 'data-warning="Unhealthy"' in html and "×9" in html

    api = client.get(f"/api/projects/{env.project.name}/environments/{env.environment}/").json()
    by_name = {p["name"]: p for p in api["pods"]}
    assert by_name[crashing]["problem"]["reason"] == "CrashLoopBackOff"
    assert by_name[crashing]["problem"]["hint"] == problem["hint"]
    assert {(w["reason"], w["count"]) for w in api["pod_warnings"]} == {
        ("Unhealthy", 9),
        ("BackOff", 4),
        ("Killing", 4),
    }

    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    html = client.get(reverse("environment-page", args=[env.project.name, env.environment])).content.decode()
    assert "提高启动时间预算" in html and "已重启 4 次" in html and "Pod 警告" in html


def test_an_oom_killed_pod_says_raise_the_memory_limit(client, people, env, kube_cluster):
    name = pod_names(kube_cluster, env.namespace)[0]
    pod = _pod(kube_cluster, env.namespace, name)
    patch_status(
        kube_cluster,
        env.namespace,
        name,
        crash_loop_status(pod, restarts=1, exit_code=137, reason="OOMKilled"),
    )
    client.force_login(people.viewer)
    state = client.get(reverse("environment-page", args=[env.project.name, env.environment])).context["state"]
    problem = next(p for p in state["pods"] if p["name"] == name)["problem"]
    assert problem["reason"] == "OOMKilled" and problem["exit_code"] == 137
    assert "raise the memory limit" in problem["hint"]
    # One OOM kill is enough to fail a release; a crash loop needs its restarts.
    assert "OOMKilled, restarted 1 time, last exit 137" in crash_loop_cause(
        pod_raw(client, env, name), restart_threshold=3
    )


def pod_raw(client, env, name) -> dict:
    from integrations.kubernetes.client import KubeClient

    with KubeClient.from_cluster(env.cluster) as kube:
        return kube.get("Pod", env.namespace, name)


def _container(**status) -> dict:
    return {
        "metadata": {"name": "orders-abc"},
        "spec": {"containers": [{"name": "app", "livenessProbe": {"httpGet": {}}}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", **status}],
        },
    }


def test_the_diagnosis_tells_the_lessons_apart():
    # Killed by the liveness probe with no start-up probe: the company's first configuration.
    no_startup = _container(
        restartCount=5,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 80s"}},
        lastState={"terminated": {"reason": "Error", "exitCode": 143}},
    )
    assert "turn the start-up probe back on" in pod_problem(no_startup).hint
    assert crash_loop_cause(no_startup, restart_threshold=3).startswith(
        "orders-abc: CrashLoopBackOff, restarted 5 times, last exit 143: back-off 80s"
    )
    assert crash_loop_cause(no_startup, restart_threshold=6) == ""  # not yet: it may still come up
    exits = _container(
        restartCount=3,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"reason": "Error", "exitCode": 1}},
    )
    assert "previous container's log" in pod_problem(exits).hint
    not_ready = _container(restartCount=0, started=True, ready=False, state={"running": {}})
    assert pod_problem(not_ready).reason == "NotReady" and pod_problem(not_ready).severity == "warning"
    starting = _container(restartCount=0, started=False, ready=False, state={"running": {}})
    assert pod_problem(starting) is None  # still inside its start-up budget
    pulling = _container(state={"waiting": {"reason": "ImagePullBackOff", "message": "not found"}})
    assert pod_problem(pulling).reason == "ImagePullBackOff"
    going = {**exits, "metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert pod_problem(going) is None


def test_the_autoscaler_summary_says_cpu_against_target_and_why_it_cannot_scale():
    from clusters.selectors.environments import hpa_summary

    cpu = {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    hpa = {
        "metadata": {"name": "orders"},
        "spec": {"minReplicas": 2, "maxReplicas": 5, "metrics": [cpu]},
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 2,
            "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "ok"},
                {
                    "type": "ScalingActive",
                    "status": "False",
                    "reason": "FailedGetResourceMetric",
                    "message": "unable to fetch metrics from resource metrics API: pods.metrics.k8s.io",
                },
            ],
        },
    }
    summary = hpa_summary(hpa)
    assert summary["cpu_target_utilization"] == 70 and summary["cpu_current_utilization"] is None
    assert summary["scaling_active"] is False
    assert summary["inactive_messages"] == [
        "FailedGetResourceMetric: unable to fetch metrics from resource metrics API: pods.metrics.k8s.io"
    ]
    hpa["status"]["conditions"][1].update(status="True", reason="ValidMetricFound", message="")
    hpa["status"].update(
        currentReplicas=3,
        desiredReplicas=4,
        currentMetrics=[
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 95}}}
        ],
    )
    summary = hpa_summary(hpa)
    assert (summary["cpu_current_utilization"], summary["current_replicas"], summary["desired_replicas"]) == (
        95,
        3,
        4,
    )
    assert summary["scaling_active"] is True and summary["inactive_messages"] == []


def test_the_page_shows_the_autoscaler_cpu_target(client, people, env):
    client.force_login(people.viewer)
    response = client.get(reverse("environment-page", args=[env.project.name, env.environment]))
    html = response.content.decode()
    assert response.context["state"]["hpa"]["cpu_target_utilization"] == 70
    assert 'data-field="cpu"' in html and "target 70%" in html
    # Shown only while the controller says it cannot scale (in the sandbox: until it has metrics).
    inactive = response.context["state"]["hpa"]["inactive_messages"]
    if inactive:
        assert 'small" id="hpa-inactive"' in html and inactive[0].split(":")[0] in html
    else:
        assert 'small d-none" id="hpa-inactive"' in html
