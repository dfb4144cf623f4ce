"""The seed's hard lessons, proven on running processes (issue 12, part 4).

java-hello and go-hello are built by the Jenkins stand-in with the portal's generic recipes, pushed to
a registry of the session's own (tests/fixtures/demo.py), and run by the pod agent as real processes on
pod IPs; the portal renders and applies their objects, changes their configuration (as ops, through the
API) and reads their state, logs and exec the way its pages do. Nothing here is checked in a rendered
spec alone.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests
from kubernetes import client as k8s

from clusters.choices import ConfigChangeStatus
from clusters.models import ProjectEnvironment
from deploys import services as deploy_services
from deploys.choices import DeploymentKind, ReleaseStatus
from deploys.models import DeploymentRecord
from deploys.tasks import provision_ticket, release_build, release_deploy, release_tag
from observability.models import AuditEvent
from sandbox.kube import podnet
from tests.fixtures.clusters import VALID_REQUEST
from tests.fixtures.kube import exec_output
from tests.fixtures.pipeline import run_release_task, use_sandbox_pipeline
from tests.helpers.environments import provision, put_overrides, run_change
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]

MiB = 1024 * 1024
# java-hello does not listen for this long (it stands for Spring Boot's start; the real default is 40 s).
JAVA_START_SECONDS = 30
JAVA_REQUEST = {
    **VALID_REQUEST,
    "replicas": 1,
    "hpa_min": 1,
    "hpa_max": 2,
    "cpu_request": "500m",
    "memory_request": "512Mi",
    "memory_limit": "512Mi",
    "health_path": "/actuator/health",
    "startup_seconds": JAVA_START_SECONDS,
    "runtime_options": "",
    "eureka_enabled": False,
    "env_vars": [["STARTUP_DELAY_SECONDS", str(JAVA_START_SECONDS)]],
}
GO_REQUEST = {
    **VALID_REQUEST,
    "replicas": 1,
    "hpa_min": 1,
    "hpa_max": 3,
    "hpa_cpu_target": 50,
    # A small request, so that a request loop from two cores' worth of Python is "load" for it.
    "cpu_request": "20m",
    "memory_request": "64Mi",
    "cpu_limit": "200m",
    "health_path": "/healthz",
    "startup_seconds": 5,
    "runtime_options": "",
    "eureka_enabled": False,
    "env_vars": [],
}


def _provision(people, cluster, language: str, request: dict, overrides: dict | None = None):
    """The project running in ``cluster``'s environment as the portal provisions it, without waiting."""
    people.project.language = language
    people.project.save(update_fields=["language"])
    return provision(people, cluster, overrides=overrides, wait=False, **request)


def _state(client, env) -> dict:
    answer = client.get(f"/api/projects/{env.project.name}/environments/{env.environment}/")
    assert answer.status_code == 200, answer.content
    return answer.json()


def _ready_pods(client, env, count: int = 1) -> list[dict] | None:
    pods = [p for p in _state(client, env)["pods"] if p["phase"] == "Running"]
    ready = [p for p in pods if p["ready"]]
    return ready if len(ready) == count and len(pods) == count else None


def _logs(client, env, pod: str, *, previous: bool = False) -> str:
    url = f"/api/projects/{env.project.name}/environments/{env.environment}/pods/{pod}/logs/"
    answer = client.get(url, {"previous": "true" if previous else "false"})
    assert answer.status_code == 200, answer.content
    return answer.content.decode()


def _max_heap_mib(log: str) -> int:
    for line in log.splitlines():
        if line.startswith("java-hello: max heap "):
            return int(line.split()[3])
    raise AssertionError(f"java-hello printed no heap size:\n{log[-2000:]}")


def _apply_as_ops(client, people, env, overrides: dict, settings, django_capture_on_commit_callbacks):
    """Ops change the environment's overrides through the API; the change runs as the worker runs it."""
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        answer = put_overrides(client, env, overrides)
    assert answer.status_code == 202, answer.content
    return run_change(answer.json()["id"])


def test_java_hello_with_the_portals_defaults_becomes_ready_sizes_its_heap_from_the_limit_and_has_its_own_fs(
    client, people, local_clusters, demo_images, kube_cluster
):
    env = _provision(
        people, local_clusters["test"], "java", {**JAVA_REQUEST, "image": demo_images["java-hello"]}
    )
    client.force_login(people.developer)
    started = time.monotonic()
    pods = until(
        "java-hello to become Ready", lambda: _ready_pods(client, env), timeout=JAVA_START_SECONDS + 90
    )
    # The startup probe let it take its time: not one restart.
    assert time.monotonic() - started >= JAVA_START_SECONDS - 5
    pod = pods[0]
    assert pod["restarts"] == 0 and pod["problem"] is None, pod
    assert pod["pod_ip"].startswith("10.0.")
    answer = requests.get(f"http://{pod['pod_ip']}:8080/actuator/health", timeout=5)
    assert answer.status_code == 200 and "UP" in answer.text

    # MaxRAMPercentage=75 of the 512Mi limit (the JVM keeps a little of it back for its own regions).
    heap = _max_heap_mib(_logs(client, env, pod["name"]))
    assert 300 <= heap <= 384, heap
    assert "1 processors" in _logs(client, env, pod["name"])  # ActiveProcessorCount from the 500m request

    # An exec (the web terminal's path: apiserver → kwok → the agent's enter helper) sees the image's
    # files, not the host's.
    core = k8s.CoreV1Api(kube_cluster.api_client)
    listing = exec_output(
        core, env.namespace, pod["name"], ["/bin/sh", "-c", "ls /; ls /opt/java/bin; cat /etc/hostname"]
    )
    assert "java" in listing and pod["name"] in listing, listing
    assert "work" not in listing.split(), listing  # /work is the host's


def test_a_jvm_that_ignores_the_container_sizes_its_heap_from_the_host(
    client, people, local_clusters, demo_images
):
    # The company's first JVMs (JDK 8 before container support) behaved like -XX:-UseContainerSupport.
    request = {
        **JAVA_REQUEST,
        "image": demo_images["java-hello"],
        "runtime_options": "-XX:-UseContainerSupport -XX:InitialRAMPercentage=1.0",
        "env_vars": [["STARTUP_DELAY_SECONDS", "1"]],
    }
    env = _provision(people, local_clusters["test"], "java", request)
    client.force_login(people.developer)
    pod = until("java-hello's pod", lambda: (_state(client, env)["pods"] or [None])[0], timeout=60)

    def heap() -> int | None:
        try:
            return _max_heap_mib(_logs(client, env, pod["name"]))
        except AssertionError:
            return None

    host_mib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // MiB
    seen = until("the heap line", heap, timeout=90)
    assert seen > 4 * 512, (seen, host_mib)  # far above the 512Mi limit: sized from the host's memory
    assert seen >= host_mib * 0.5, (seen, host_mib)


def test_without_the_startup_probe_java_hello_restarts_in_a_loop_and_the_page_says_why(
    client, people, local_clusters, demo_images, settings, django_capture_on_commit_callbacks
):
    env = _provision(
        people, local_clusters["test"], "java", {**JAVA_REQUEST, "image": demo_images["java-hello"]}
    )
    client.force_login(people.developer)
    until("java-hello to become Ready", lambda: _ready_pods(client, env), timeout=JAVA_START_SECONDS + 90)

    # The company's first configuration: no startup probe, a short initial delay. Liveness then kills the
    # JVM (3 failures, 10 s apart, from 5 s) before it listens at 30 s.
    settings.OPSPORTAL_ROLLOUT_TIMEOUT = 60
    change = _apply_as_ops(
        client,
        people,
        env,
        {"startup_probe_enabled": 0, "probe_initial_delay_seconds": 5},
        settings,
        django_capture_on_commit_callbacks,
    )
    assert change.status == ConfigChangeStatus.FAILED, change.status
    client.force_login(people.developer)

    def looping() -> dict | None:
        for pod in _state(client, env)["pods"]:
            if pod["restarts"] >= 2:
                return pod
        return None

    pod = until("the new pod to restart twice", looping, timeout=150)
    assert not pod["ready"]
    problem = pod["problem"]
    assert problem, pod
    assert "liveness probe killed the container before it finished starting" in problem["hint"], problem
    state = _state(client, env)
    reasons = {w["reason"] for w in state["pod_warnings"] if w["pod"] == pod["name"]}
    assert {"Unhealthy", "BackOff"} <= reasons, state["pod_warnings"]
    # The old pod (with the startup probe) still serves: the rollout never replaced it.
    assert any(p["ready"] for p in state["pods"]), state["pods"]


def test_slow_health_fails_a_1s_probe_timeout_and_passes_the_portals_default(
    client, people, local_clusters, demo_images, settings, django_capture_on_commit_callbacks
):
    request = {
        **JAVA_REQUEST,
        "image": demo_images["java-hello"],
        "env_vars": [["STARTUP_DELAY_SECONDS", "2"], ["SLOW_HEALTH", "true"]],
    }
    env = _provision(people, local_clusters["test"], "java", request)
    client.force_login(people.developer)
    # Health answers in 1.5 s: the portal's 3 s timeout accepts it.
    until("java-hello to become Ready with slow health", lambda: _ready_pods(client, env), timeout=120)

    settings.OPSPORTAL_ROLLOUT_TIMEOUT = 40
    change = _apply_as_ops(
        client, people, env, {"probe_timeout_seconds": 1}, settings, django_capture_on_commit_callbacks
    )
    assert change.status == ConfigChangeStatus.FAILED, change.status
    client.force_login(people.developer)
    state = _state(client, env)
    new = [p for p in state["pods"] if not p["ready"]]
    assert new, state["pods"]
    unhealthy = [w for w in state["pod_warnings"] if w["reason"] == "Unhealthy"]
    assert unhealthy and any("timeout" in w["message"].lower() for w in unhealthy), state["pod_warnings"]


def _load(urls: list[str], stop: threading.Event) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            for url in urls:
                try:
                    session.get(url, timeout=2)
                except requests.RequestException:
                    pass


def test_load_on_go_hello_scales_it_out_and_back_in(
    client, people, local_clusters, demo_images, kube_cluster
):
    request = {**GO_REQUEST, "image": demo_images["go-hello"]}
    env = _provision(people, local_clusters["test"], "go", request, {"hpa_scale_down_window_seconds": 0})
    client.force_login(people.developer)
    pods = until("go-hello to become Ready", lambda: _ready_pods(client, env), timeout=90)
    pod_ip = pods[0]["pod_ip"]
    # The seal: the pod IP is reached over the sandbox's bridge, never through the host's uplink.
    device = podnet.route_device(pod_ip)
    assert device is not None and device.startswith("opsbr"), device

    def scaling_active() -> dict | None:
        hpa = _state(client, env)["hpa"]
        return hpa if hpa and hpa["scaling_active"] and hpa["cpu_current_utilization"] is not None else None

    until("the HPA to read real CPU usage", scaling_active, timeout=90)
    stop = threading.Event()
    urls = [f"http://{pod_ip}:8080/"]
    workers = [threading.Thread(target=_load, args=(urls, stop), daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        seen: list[dict] = []

        def scaled_out() -> dict | None:
            hpa = _state(client, env)["hpa"]
            seen.append(hpa)
            return hpa if hpa and hpa["desired_replicas"] > 1 else None

        try:
            hpa = until("the HPA to scale out", scaled_out, timeout=150)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; the HPA said: {[h and h['current_metrics'] for h in seen[-3:]]}"
            ) from None
        assert hpa["cpu_current_utilization"] > 50, hpa
        until("more than one go-hello pod", lambda: len(_state(client, env)["pods"]) > 1, timeout=60)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)
    until(
        "the HPA to scale back in",
        lambda: (h := _state(client, env)["hpa"])
        and h["desired_replicas"] == 1
        and h["current_replicas"] == 1,
        timeout=180,
    )


def test_a_release_into_the_first_configuration_fails_with_the_restart_loop_and_rolls_back(
    client, people, local_clusters, demo_pipeline, settings, django_capture_on_commit_callbacks
):
    """Through the whole pipeline: tag, Jenkins build with the generic java recipe, image swap."""
    use_sandbox_pipeline(settings, demo_pipeline)
    settings.RELEASE_POD_CHECK_SECONDS = 1
    project = people.project
    project.language = "java"
    project.gitlab_repository = f"demo/java-hello-{project.pk}"
    project.auto_rollback = True
    project.save()
    demo_pipeline.add_repository(project.gitlab_repository, demo="java-hello")
    cluster = local_clusters["test"]
    ticket = deploy_services.ticket_create(
        actor=people.developer, project=project, environment="test", request=JAVA_REQUEST, submit=True
    )
    deploy_services.ticket_approve(actor=people.ops, ticket_id=ticket.pk, cluster_id=cluster.pk)
    ticket.refresh_from_db()  # the approval gave it its run token
    provision_ticket.apply(kwargs={"ticket_id": ticket.pk, "run_token": str(ticket.run_token)})
    ticket.refresh_from_db()
    assert ticket.status == "active", ticket.error

    submitted = time.monotonic()
    good = deploy_services.release_submit(actor=people.developer, project=project, branch="main")
    for task in (release_tag, release_build, release_deploy):
        good = run_release_task(task, good)
    assert good.status == ReleaseStatus.DEPLOYED, good.error
    # The cost figure in README (deployed = the new pod passed its startup and readiness probes).
    print(f"java-hello release to a Ready pod: {time.monotonic() - submitted:.1f} s")

    env = ProjectEnvironment.objects.get(project=project, environment="test")
    settings.OPSPORTAL_ROLLOUT_TIMEOUT = 20
    _apply_as_ops(
        client,
        people,
        env,
        {"startup_probe_enabled": 0, "probe_initial_delay_seconds": 5},
        settings,
        django_capture_on_commit_callbacks,
    )
    bad = deploy_services.release_submit(
        actor=people.developer, project=project, branch="main", description="into the restart loop"
    )
    for task in (release_tag, release_build, release_deploy):
        bad = run_release_task(task, bad)
    assert bad.status == ReleaseStatus.FAILED, bad.status
    assert "CrashLoopBackOff, restarted" in bad.error, bad.error
    assert "liveness probe killed the container before it finished starting" in bad.error, bad.error
    rollback = DeploymentRecord.objects.get(project=project, kind=DeploymentKind.ROLLBACK)
    assert rollback.image == good.image
    assert AuditEvent.objects.filter(verb="release.rollback.auto", project=project).exists()
