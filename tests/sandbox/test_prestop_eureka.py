"""Acceptance (issue 15, part 4): java-hello pods, provisioned by the portal with its preStop defaults, are
Eureka clients of the real Eureka server. Deleting a pod turns it OUT_OF_SERVICE in Eureka before its
process receives SIGTERM, and only then is it removed.

java-hello is built by the generic java recipe (with the preStop helper), run by the pod agent as real
processes on pod IPs, and reaches the Eureka server through the relay on the pod network's gateway. The
figures of the stale window are made small (server cache 0 s, as the test server runs with its read-only
cache off; fetch interval 1 s; no load-balancer cache), so the wait is 0 + 1 + 0 + 5 = 6 s instead of 100.
Times come from two clocks of the same machine: the application's log lines (its own Instant.now()) and
this test's polls of the Eureka server.
"""

from __future__ import annotations

import datetime
import json
import threading
import time

import pytest
from kubernetes import client as k8s

from clusters.models import Cluster
from clusters.workload import manifests
from tests.fixtures.clusters import VALID_REQUEST
from tests.fixtures.eureka import eureka_pod_url
from tests.helpers import eureka
from tests.helpers.environments import provision
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]

REPLICAS = 2
STALE_WINDOW = 6


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _app_log(kube_cluster, namespace: str, pod: str) -> list[dict]:
    """java-hello's JSON lines from the container log the agent wrote (it stays after the pod is gone)."""
    path = kube_cluster.cluster.workdir / "pods" / namespace / pod / "app.log"
    lines = []
    for raw in path.read_text().splitlines():
        text = raw.split(" ", 3)[3]
        if text.startswith("{"):
            line = json.loads(text)
            line["at"] = datetime.datetime.fromisoformat(line["ts"])
            lines.append(line)
    return lines


def _one(lines: list[dict], msg: str) -> dict:
    found = [line for line in lines if line["msg"] == msg]
    assert len(found) == 1, (msg, [line["msg"] for line in lines])
    return found[0]


class Watch(threading.Thread):
    """Polls one instance in the Eureka server and keeps each change of its status with the time seen."""

    def __init__(self, eureka_url: str, app: str, instance_id: str) -> None:
        super().__init__(name="eureka-watch", daemon=True)
        self.args = (eureka_url, app, instance_id)
        self.seen: list[tuple[datetime.datetime, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            record = eureka.instance(*self.args)
            state = "GONE" if record is None else f"{record['status']}/{record['overriddenStatus']}"
            if not self.seen or self.seen[-1][1] != state:
                self.seen.append((_now(), state))
            if state == "GONE":
                return
            time.sleep(0.1)

    def first(self, state: str) -> datetime.datetime:
        times = [at for at, seen in self.seen if seen == state]
        assert times, (state, self.seen)
        return times[0]


def test_deleting_a_java_hello_pod_turns_it_out_of_service_before_sigterm_then_removes_it(
    client, people, local_clusters, demo_images, kube_cluster, eureka_server, unique_app
):
    cluster = local_clusters["test"]
    Cluster.objects.filter(pk=cluster.pk).update(eureka_url=eureka_server.eureka_url)
    cluster.refresh_from_db()
    people.project.language = "java"
    people.project.save(update_fields=["language"])
    request = {
        **VALID_REQUEST,
        "image": demo_images["java-hello"],
        "replicas": REPLICAS,
        "hpa_min": REPLICAS,
        "hpa_max": REPLICAS,
        "cpu_request": "250m",
        "memory_request": "256Mi",
        "health_path": "/actuator/health",
        "startup_seconds": 10,
        "runtime_options": "",
        # The portal's defaults for the hook (POST /actuator/serviceregistry), with a small stale window.
        "eureka_enabled": True,
        "eureka_response_cache_seconds": 0,
        "registry_refresh_seconds": 1,
        "loadbalancer_cache_seconds": 0,
        "env_vars": [
            ["STARTUP_DELAY_SECONDS", "2"],
            ["EUREKA_URL", eureka_pod_url(eureka_server, kube_cluster)],
            ["EUREKA_APP", unique_app],
            ["EUREKA_RENEWAL_SECONDS", "2"],
        ],
    }
    env = provision(people, cluster, wait=False, **request)
    deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment(
        env.project.name, env.namespace
    )
    pod_spec = deployment.spec.template.spec
    hook = " ".join(pod_spec.containers[0].lifecycle.pre_stop._exec.command)
    assert "url=http://127.0.0.1:8080/actuator/serviceregistry;" in hook and "sleep 6\n" in hook
    assert pod_spec.termination_grace_period_seconds == manifests.DEREGISTER_TIMEOUT + STALE_WINDOW + 30

    # Both pods register UP, and the portal's Eureka section finds them with their pods.
    client.force_login(people.developer)
    url = f"/api/projects/{env.project.name}/environments/{env.environment}/eureka/"

    def all_up() -> dict | None:
        answer = client.get(url)
        assert answer.status_code == 200, answer.content
        instances = answer.json()["instances"]
        up = [i for i in instances if i["status"] == "UP" and i["pod"]]
        return answer.json() if len(up) == REPLICAS == len(instances) else None

    listed = until("both pods UP in Eureka", all_up, timeout=240)
    assert listed["app"] == unique_app
    instances = listed["instances"]
    victim = instances[0]
    assert victim["instance_id"] == f"{victim['ip_addr']}:{unique_app.lower()}:8080"

    watch = Watch(eureka_server.eureka_url, unique_app, victim["instance_id"])
    watch.start()
    deleted_at = _now()
    answer = client.delete(
        f"/api/projects/{env.project.name}/environments/{env.environment}/pods/{victim['pod']}/"
    )
    assert answer.status_code == 204, answer.content
    watch.join(timeout=manifests.DEREGISTER_TIMEOUT + STALE_WINDOW + 60)
    watch.done.set()
    states = [state for _at, state in watch.seen]
    assert states[:2] == ["UP/UNKNOWN", "OUT_OF_SERVICE/OUT_OF_SERVICE"], watch.seen
    # On SIGTERM the client registers itself DOWN (the override stays) just before it de-registers.
    assert states[-1] == "GONE" and set(states[2:-1]) <= {"DOWN/OUT_OF_SERVICE"}, watch.seen

    lines = _app_log(kube_cluster, env.namespace, victim["pod"])
    override = _one(lines, "eureka status override")
    sigterm = _one(lines, "shutting down")
    deregistered = _one(lines, "eureka deregistered")
    assert (override["status"], override["http_status"]) == ("OUT_OF_SERVICE", 200)
    assert sigterm["signal"] == "SIGTERM"
    assert deregistered["http_status"] == 200
    out_of_service_seen = watch.first("OUT_OF_SERVICE/OUT_OF_SERVICE")
    gone_seen = watch.first("GONE")
    print(
        f"delete {deleted_at:%T.%f}, override {override['at']:%T.%f}, Eureka OUT_OF_SERVICE seen "
        f"{out_of_service_seen:%T.%f}, SIGTERM {sigterm['at']:%T.%f}, removed seen {gone_seen:%T.%f}"
    )
    # OUT_OF_SERVICE in Eureka while the process had not yet been told to stop...
    assert deleted_at <= override["at"] < out_of_service_seen + datetime.timedelta(seconds=0.5)
    assert out_of_service_seen < sigterm["at"]
    # ...for the whole stale window, and removed only after SIGTERM.
    assert (sigterm["at"] - override["at"]).total_seconds() >= STALE_WINDOW - 0.5
    assert sigterm["at"] <= deregistered["at"] <= gone_seen + datetime.timedelta(seconds=0.5)
    # The application's view of the same moments: it served the POST, then stopped cleanly.
    assert [line["msg"] for line in lines[lines.index(sigterm) :]] == [
        "shutting down",
        "eureka unregistering",
        "eureka deregistered",
        "stopped",
    ]
    # The other pod stayed UP throughout.
    other = eureka.instance(eureka_server.eureka_url, unique_app, instances[1]["instance_id"])
    assert (other["status"], other["overriddenStatus"]) == ("UP", "UNKNOWN")
    events = k8s.CoreV1Api(kube_cluster.api_client).list_namespaced_event(
        env.namespace, field_selector=f"involvedObject.name={victim['pod']}"
    )
    assert [e for e in events.items if e.reason == "FailedPreStopHook"] == []
