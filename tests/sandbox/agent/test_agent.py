"""The pod agent runs sandbox-registry images as real processes: probes, restarts, preStop, env, logs.

One busybox image (built with the sandbox's build_image.sh, pushed to a module registry) serves every
test; the session cluster's agent is told about the registry with ``allow_registry``.
"""

from __future__ import annotations

import signal
import time
import urllib.request

from kubernetes import client

from sandbox.kube import podnet
from sandbox.kube.agent.agent import NOT_IN_REGISTRY, SIMULATED_ANNOTATION
from tests.fixtures.kube import KubeCluster, exec_output
from tests.polling import until


def _core(kube_cluster: KubeCluster) -> client.CoreV1Api:
    return client.CoreV1Api(kube_cluster.api_client)


def _pod(name: str, image: str, **container) -> dict:
    spec = container.pop("pod_spec", {})
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            **spec,
            "containers": [{"name": "app", "image": image, **container}],
        },
    }


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def _status(pod: client.V1Pod) -> client.V1ContainerStatus | None:
    return (pod.status.container_statuses or [None])[0]


def test_ready_only_after_readiness_probe_passes_and_serves_http_on_the_pod_ip(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    command = ["sh", "-c", "sleep 3; touch /tmp/ready; exec httpd -f -p 8080 -h /www"]
    probe = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}
    core.create_namespaced_pod(kube_namespace, _pod("web", web_image, command=command, readinessProbe=probe))

    running = until(
        "the container to run",
        lambda: (
            p
            if (s := _status(p := core.read_namespaced_pod("web", kube_namespace))) and s.state.running
            else None
        ),
        120,
    )
    assert not _ready(running) and not _status(running).ready  # the probe has not passed yet
    assert running.metadata.annotations is None or SIMULATED_ANNOTATION not in running.metadata.annotations
    pod = until(
        "the pod to become Ready",
        lambda: p if _ready(p := core.read_namespaced_pod("web", kube_namespace)) else None,
        30,
    )
    # The readiness file exists inside the container, which is what an exec (through kwok) sees.
    assert (
        exec_output(core, kube_namespace, "web", ["ls", "/tmp/ready", "/www"])
        == "/tmp/ready\n\n/www:\ncgi-bin\nindex.html\n"
    )
    status = _status(pod)
    assert status.started and status.ready and status.restart_count == 0
    assert status.image_id.startswith(web_image.rsplit(":", 1)[0] + "@sha256:")
    assert status.container_id.startswith("sandbox://")

    ip = pod.status.pod_ip
    network = kube_cluster.cluster.network
    assert network.contains(ip) and pod.status.host_ip == "127.0.0.1"
    # Sealed before any packet: the pod IP goes over the cluster's bridge, never eth0.
    assert podnet.route_device(ip) == network.bridge
    with urllib.request.urlopen(f"http://{ip}:8080/index.html", timeout=5) as response:  # noqa: S310
        assert response.read() == b"hello from the pod\n"


def test_failing_liveness_probe_restarts_with_crash_loop_back_off(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    probe = {"httpGet": {"path": "/missing", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    core.create_namespaced_pod(
        kube_namespace,
        _pod("sick", web_image, livenessProbe=probe, pod_spec={"terminationGracePeriodSeconds": 1}),
    )
    seen_back_off = []

    def restarted_twice():
        status = _status(core.read_namespaced_pod("sick", kube_namespace))
        if status and status.state.waiting and status.state.waiting.reason == "CrashLoopBackOff":
            seen_back_off.append(status)
        return status if status and status.restart_count >= 2 and seen_back_off else None

    status = until("two liveness restarts and a back-off", restarted_twice, 120)
    last = status.last_state.terminated
    # The kill for a failed liveness probe is a SIGTERM, which ends httpd.
    assert last.exit_code == 128 + signal.SIGTERM and last.reason == "Error"
    assert "restarting failed container=app" in seen_back_off[0].state.waiting.message
    events = core.list_namespaced_event(kube_namespace, field_selector="involvedObject.name=sick").items
    assert any(e.reason == "Killing" and "liveness probe failed" in e.message for e in events)


def test_exiting_container_crash_loops_with_its_exit_code_and_logs(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    core.create_namespaced_pod(
        kube_namespace, _pod("quitter", web_image, command=["sh", "-c", "echo bye from $HOSTNAME; exit 3"])
    )

    def backing_off():
        status = _status(core.read_namespaced_pod("quitter", kube_namespace))
        waiting = status and status.state.waiting
        return status if waiting and waiting.reason == "CrashLoopBackOff" else None

    status = until("CrashLoopBackOff", backing_off, 120)
    assert status.last_state.terminated.exit_code == 3
    assert status.last_state.terminated.reason == "Error"
    assert status.restart_count >= 1 and not status.ready
    pod = core.read_namespaced_pod("quitter", kube_namespace)
    assert pod.status.phase == "Running" and not _ready(pod)
    # kubectl logs through the apiserver: the process's own output, from the CRI file kwok serves.
    assert core.read_namespaced_pod_log("quitter", kube_namespace) == "bye from quitter\n"
    assert core.read_namespaced_pod_log("quitter", kube_namespace, previous=True) == "bye from quitter\n"


def test_deletion_runs_pre_stop_then_sigterm_and_waits_for_the_process(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    script = (
        'trap "echo got TERM; sleep 2; echo exiting; exit 0" TERM; '
        "echo started; while true; do sleep 0.2; done"
    )
    pre_stop = {"exec": {"command": ["sh", "-c", "echo pre-stop > /proc/1/fd/1; sleep 1"]}}
    core.create_namespaced_pod(
        kube_namespace,
        _pod(
            "graceful",
            web_image,
            command=["sh", "-c", script],
            lifecycle={"preStop": pre_stop},
            pod_spec={"terminationGracePeriodSeconds": 20},
        ),
    )
    until("the pod to be Ready", lambda: _ready(core.read_namespaced_pod("graceful", kube_namespace)), 120)
    log_file = kube_cluster.cluster.workdir / "pods" / kube_namespace / "graceful" / "app.log"
    until("the process to start", lambda: "started" in log_file.read_text(), 30)

    started = time.monotonic()
    core.delete_namespaced_pod("graceful", kube_namespace)
    # The object stays while preStop (1 s) and the TERM handler (2 s) run.
    time.sleep(1.5)
    assert core.read_namespaced_pod("graceful", kube_namespace).metadata.deletion_timestamp is not None

    until("the pod object to go", lambda: _gone(core, kube_namespace, "graceful"), 30)
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 20, elapsed
    lines = [line.split(" ", 3)[3] for line in log_file.read_text().splitlines()]
    assert lines == ["started", "pre-stop", "got TERM", "exiting"]


def test_env_resolves_secrets_config_maps_downward_api_and_expansion(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
    )
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast", "level": "debug"}}
    )
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "GREETING", "value": "from-pod"},
        {"name": "ADDRESS", "value": "$(POD_IP):8080 $(UNDEFINED) $$(POD_IP)"},
        {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
    ]
    env_from = [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}]
    command = ["sh", "-c", "env | sort; sleep 3600"]
    core.create_namespaced_pod(
        kube_namespace, _pod("env", web_image, command=command, env=env, envFrom=env_from)
    )

    pod = until(
        "the pod to be Ready",
        lambda: p if _ready(p := core.read_namespaced_pod("env", kube_namespace)) else None,
        120,
    )
    logs = until(
        "env output",
        lambda: (
            text if "POD_IP=" in (text := core.read_namespaced_pod_log("env", kube_namespace)) else None
        ),
        30,
    )
    values = dict(line.split("=", 1) for line in logs.splitlines() if "=" in line)
    ip = pod.status.pod_ip
    assert values["PASSWORD"] == "s3cret"
    assert values["MODE"] == "fast"
    assert (values["CFG_mode"], values["CFG_level"]) == ("fast", "debug")
    assert (values["POD_NAME"], values["POD_NAMESPACE"], values["POD_IP"]) == ("env", kube_namespace, ip)
    assert values["NODE"] == pod.spec.node_name
    assert values["GREETING"] == "from-pod"  # the pod's env wins over the image's
    assert values["PATH"] == "/bin"  # the image's env underneath
    assert values["ADDRESS"] == f"{ip}:8080 $(UNDEFINED) $(POD_IP)"
    assert "MISSING" not in values


def test_missing_secret_holds_the_container_until_it_exists(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    core.create_namespaced_pod(kube_namespace, _pod("waiter", web_image, env=env))

    def config_error():
        status = _status(core.read_namespaced_pod("waiter", kube_namespace))
        waiting = status and status.state.waiting
        return waiting if waiting and waiting.reason == "CreateContainerConfigError" else None

    waiting = until("CreateContainerConfigError", config_error, 60)
    assert waiting.message == 'secret "later" not found'
    core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "later"}, "stringData": {"token": "t"}}
    )
    until("the pod to be Ready", lambda: _ready(core.read_namespaced_pod("waiter", kube_namespace)), 60)


def test_image_outside_the_sandbox_registries_is_simulated(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    core.create_namespaced_pod(kube_namespace, _pod("elsewhere", "registry.example.com/team/app:1"))
    pod = until(
        "the simulated pod to be Ready",
        lambda: p if _ready(p := core.read_namespaced_pod("elsewhere", kube_namespace)) else None,
        60,
    )
    assert pod.metadata.annotations[SIMULATED_ANNOTATION] == NOT_IN_REGISTRY
    assert pod.status.phase == "Running"
    assert kube_cluster.cluster.network.contains(pod.status.pod_ip)
    # Nothing runs for it: no network namespace was made.
    assert kube_cluster.cluster.network.netns_name(pod.metadata.uid) not in podnet.list_netns()


def test_startup_probe_holds_back_liveness_until_the_app_has_started(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    started = {"exec": {"command": ["test", "-f", "/tmp/started"]}, "periodSeconds": 1}
    command = ["sh", "-c", "sleep 3; touch /tmp/started; exec httpd -f -p 8080 -h /www"]
    core.create_namespaced_pod(
        kube_namespace,
        _pod(
            "slow-start",
            web_image,
            command=command,
            startupProbe={**started, "failureThreshold": 20},
            # Alone, this would kill the container during its first 3 s.
            livenessProbe={**started, "failureThreshold": 1},
            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        ),
    )
    starting = until(
        "the container to run",
        lambda: s
        if (s := _status(core.read_namespaced_pod("slow-start", kube_namespace))) and s.state.running
        else None,
        120,
    )
    assert not starting.started and not starting.ready
    until("the pod to be Ready", lambda: _ready(core.read_namespaced_pod("slow-start", kube_namespace)), 30)
    status = _status(core.read_namespaced_pod("slow-start", kube_namespace))
    assert status.started and status.restart_count == 0


def test_probe_timeout_fails_a_slow_endpoint_that_a_longer_timeout_accepts(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    for name, timeout in (("short", 1), ("long", 5)):
        probe = {
            "httpGet": {"path": "/cgi-bin/slow", "port": 8080},
            "periodSeconds": 1,
            "timeoutSeconds": timeout,
        }
        core.create_namespaced_pod(kube_namespace, _pod(name, web_image, readinessProbe=probe))
    until(
        "the long-timeout pod to be Ready",
        lambda: _ready(core.read_namespaced_pod("long", kube_namespace)),
        120,
    )
    # The endpoint answers in 2 s: by now the short-timeout pod has failed several probes.
    time.sleep(3)
    short = core.read_namespaced_pod("short", kube_namespace)
    assert _status(short).state.running and not _ready(short)


def test_memory_limit_ends_in_oom_killed(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    hog = ["sh", "-c", "echo start; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
    core.create_namespaced_pod(
        kube_namespace,
        _pod(
            "hog",
            web_image,
            command=hog,
            resources={"limits": {"memory": "32Mi"}},
            pod_spec={"restartPolicy": "Never"},
        ),
    )

    def terminated():
        status = _status(core.read_namespaced_pod("hog", kube_namespace))
        return status.state.terminated if status and status.state.terminated else None

    state = until("the container to be killed", terminated, 120)
    assert state.reason == "OOMKilled" and state.exit_code == 128 + signal.SIGKILL
    assert core.read_namespaced_pod("hog", kube_namespace).status.phase == "Failed"


def test_deletion_kills_a_process_that_ignores_sigterm_after_the_grace_period(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    script = 'trap "echo ignoring TERM" TERM; echo started; while true; do sleep 0.2; done'
    core.create_namespaced_pod(
        kube_namespace,
        _pod(
            "stubborn", web_image, command=["sh", "-c", script], pod_spec={"terminationGracePeriodSeconds": 3}
        ),
    )
    until("the pod to be Ready", lambda: _ready(core.read_namespaced_pod("stubborn", kube_namespace)), 120)
    log_file = kube_cluster.cluster.workdir / "pods" / kube_namespace / "stubborn" / "app.log"
    until("the process to start", lambda: "started" in log_file.read_text(), 30)
    netns = kube_cluster.cluster.network.netns_name(
        core.read_namespaced_pod("stubborn", kube_namespace).metadata.uid
    )

    began = time.monotonic()
    core.delete_namespaced_pod("stubborn", kube_namespace)

    until("the pod object to go", lambda: _gone(core, kube_namespace, "stubborn"), 30)
    assert 3.0 <= time.monotonic() - began < 15
    assert "ignoring TERM" in log_file.read_text()
    assert netns not in podnet.list_netns()  # the namespace went before the object did
