"""Acceptance (issue 15, part 5): zero lost requests, measured.

java-hello runs with 2 replicas as pods the portal provisioned on the local control plane (real processes
on pod IPs, Eureka clients of the real Eureka server through the pods' gateway). A bounded caller
(tests/helpers/discovery_caller.py) finds it the way a Spring Cloud caller does: a registry copy fetched
from Eureka every F s (UP instances only) under a load-balancer cache of L s, round-robin, 40 requests/s.
It calls continuously through three changes the portal makes, each measured on its own:

- a rolling update: a new image put on the Deployment by ``environment_set_image``, the release's deploy
  step (the same build under its tag instead of its digest: a new pod template, so every pod is replaced);
- a rollback: ``release_rollback`` back to the earlier (digest) deployment, run as the worker would;
- a scale-in from 2 to 1: a configuration change through the API, applied as the worker would.

With the portal's defaults for the hook (OUT_OF_SERVICE, then the computed wait), no request fails. With
the hook removed — the cleanest way the portal allows: Eureka de-registration off (``eureka_enabled``
False) and the wait overridden to 0 (``prestop_sleep_seconds``), so the hook is ``sleep 0`` and SIGTERM
comes at once — requests fail in every scenario, and the test prints how many.

The figures are small so the test takes minutes, not the 100 s wait per pod of the defaults: the test
Eureka server runs with its read-only cache off (0 s), F = L = 3 s, and the environment is given the same
figures through its knobs, so the computed wait is 0 + 3 + 3 + 5 = 11 s. Both cases take about 3 minutes
with the session's control plane, Eureka server and java-hello build (figures in README, "Zero lost
requests").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from clusters.models import Cluster, ConfigChange, ProjectEnvironment
from clusters.services.environments import environment_set_image
from clusters.workload import manifests
from deploys.models import DeploymentRecord, Release
from deploys.services import releases
from projects.models import Project
from tests.fixtures.eureka import eureka_pod_url
from tests.helpers.discovery_caller import DiscoveryCaller, up_instances
from tests.helpers.environments import provision, run_change
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]

REPLICAS = 2
FETCH = 3  # the caller's registry fetch interval, and the environment's registry_refresh_seconds
LB_CACHE = 3  # the caller's load-balancer cache, and the environment's loadbalancer_cache_seconds
STALE_WINDOW = 0 + FETCH + LB_CACHE + manifests.STALE_WINDOW_MARGIN
RATE = 40.0

HOOKS = {
    # The portal's defaults: the hook as rendered from the request, nothing overridden.
    "defaults": {"eureka_enabled": True, "overrides": {}},
    # No de-registration and no wait: the pod gets SIGTERM as soon as it is deleted.
    "removed": {"eureka_enabled": False, "overrides": {"prestop_sleep_seconds": 0}},
}


def _pods(kube_cluster, namespace: str) -> list:
    return k8s.CoreV1Api(kube_cluster.api_client).list_namespaced_pod(namespace).items


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _settled(kube_cluster, eureka_url: str, namespace: str, app: str, replicas: int) -> list[str] | None:
    """``replicas`` pods, all Ready, none terminating, and exactly their IPs UP in Eureka."""
    pods = _pods(kube_cluster, namespace)
    if len(pods) != replicas or any(p.metadata.deletion_timestamp or not _ready(p) for p in pods):
        return None
    up = up_instances(eureka_url, app)
    return up if sorted(f"{p.status.pod_ip}:8080" for p in pods) == up else None


def _settle(kube_cluster, eureka_url: str, env, app: str, replicas: int) -> list[str]:
    return until(
        f"{replicas} pods Ready and UP in Eureka, none terminating",
        lambda: _settled(kube_cluster, eureka_url, env.namespace, app, replicas),
        timeout=manifests.DEREGISTER_TIMEOUT + STALE_WINDOW + 150,
    )


@dataclass
class Measured:
    caller: DiscoveryCaller
    before: list[str]  # ip:port UP in Eureka when the change started
    after: list[str]  # ... once the old pods were gone

    @property
    def stopped(self) -> set[str]:
        return set(self.before) - set(self.after)


def _measure(kube_cluster, eureka_url: str, env, app: str, replicas_after: int, change) -> Measured:
    """Call continuously from a settled state, through ``change``, until the old pods are gone and the
    caller's caches have caught up with the registry."""
    before = _settle(kube_cluster, eureka_url, env, app, REPLICAS)
    caller = DiscoveryCaller(
        eureka_url, app, fetch_seconds=FETCH, lb_cache_seconds=LB_CACHE, rate=RATE, max_seconds=300
    )
    with caller:
        time.sleep(FETCH + LB_CACHE)  # some calls before the change, to the settled pods
        change()
        after = _settle(kube_cluster, eureka_url, env, app, replicas_after)
        until(
            "the caller's load balancer sees only the new pods", lambda: sorted(caller.lb_view()) == after, 30
        )
        time.sleep(1)
    return Measured(caller, before, after)


def _deployed(env, release: Release, image: str, kind: str = "release") -> DeploymentRecord:
    return DeploymentRecord.objects.create(
        project=env.project,
        environment=env.environment,
        kind=kind,
        release=release,
        image=image,
        outcome="succeeded",
        actor=release.created_by,
        finished_at=timezone.now(),
    )


@pytest.mark.parametrize("hook", list(HOOKS))
def test_requests_through_eureka_during_a_rolling_update_a_rollback_and_a_scale_in(
    hook, client, people, local_clusters, demo_images, kube_cluster, eureka_server, unique_app
):
    cluster = local_clusters["test"]
    Cluster.objects.filter(pk=cluster.pk).update(eureka_url=eureka_server.eureka_url)
    cluster.refresh_from_db()
    # A project of its own per case, so the two cases never share a namespace in the session's cluster.
    Project.objects.filter(pk=people.project.pk).update(name=f"zero-lost-{hook}", language="java")
    people.project.refresh_from_db()
    image = demo_images["java-hello"]  # host/demo/java-hello:v1.0.0@sha256:…
    tagged = image.split("@", 1)[0]  # the same build by its tag: another pod template
    eureka_url = eureka_server.eureka_url
    settings = HOOKS[hook]
    env = provision(
        people,
        cluster,
        wait=False,
        overrides=settings["overrides"],
        image=image,
        replicas=REPLICAS,
        hpa_min=REPLICAS,
        hpa_max=REPLICAS,
        cpu_request="250m",
        memory_request="256Mi",
        health_path="/actuator/health",
        startup_seconds=10,
        runtime_options="",
        eureka_enabled=settings["eureka_enabled"],
        eureka_response_cache_seconds=0,
        registry_refresh_seconds=FETCH,
        loadbalancer_cache_seconds=LB_CACHE,
        env_vars=[
            ["STARTUP_DELAY_SECONDS", "2"],
            ["EUREKA_URL", eureka_pod_url(eureka_server, kube_cluster)],
            ["EUREKA_APP", unique_app],
            ["EUREKA_RENEWAL_SECONDS", "2"],
        ],
    )
    try:
        deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment(
            env.project.name, env.namespace
        )
        hook_command = " ".join(deployment.spec.template.spec.containers[0].lifecycle.pre_stop._exec.command)
        if hook == "defaults":
            assert "/actuator/serviceregistry" in hook_command and f"sleep {STALE_WINDOW}\n" in hook_command
        else:
            assert hook_command == "/bin/sh -c sleep 0"
        _settle(kube_cluster, eureka_url, env, unique_app, REPLICAS)

        first = Release.objects.create(
            project=env.project,
            environment=env.environment,
            created_by=people.developer,
            branch="main",
            version="v1.0.0",
            status="deployed",
        )
        earlier = _deployed(env, first, image)
        env = ProjectEnvironment.objects.select_related("project", "cluster").get(pk=env.pk)

        def rolling_update() -> None:
            rollout = environment_set_image(environment=env, image=tagged, on_progress=lambda state: None)
            assert rollout.ok, rollout.message
            second = Release.objects.create(
                project=env.project,
                environment=env.environment,
                created_by=people.developer,
                branch="main",
                version="v1.0.1",
                status="deployed",
            )
            _deployed(env, second, tagged)

        def rollback() -> None:
            record = releases.release_rollback(
                actor=people.developer, project=env.project, environment=env.environment, record_id=earlier.pk
            )
            releases.rollback_deploy(record_id=record.pk)
            record.refresh_from_db()
            assert record.outcome == "succeeded", record.message

        def scale_in() -> None:
            client.force_login(people.ops)
            answer = client.put(
                f"/api/projects/{env.project.name}/environments/{env.environment}/config/",
                {"request": {"replicas": 1, "hpa_min": 1, "hpa_max": 1}, "overrides": settings["overrides"]},
                content_type="application/json",
            )
            assert answer.status_code in (200, 202), answer.content
            change = run_change(ConfigChange.objects.filter(environment=env).latest("pk"))
            assert change.status == "applied", change.error

        scenarios = [
            ("rolling update", REPLICAS, rolling_update),
            ("rollback", REPLICAS, rollback),
            ("scale-in 2 -> 1", 1, scale_in),
        ]
        figures = {}
        for name, replicas_after, change in scenarios:
            started = time.monotonic()
            measured = _measure(kube_cluster, eureka_url, env, unique_app, replicas_after, change)
            figures[name] = measured
            print(f"[{hook}] {name}: {measured.caller.summary()} ({time.monotonic() - started:.0f}s)")
            for target in sorted(measured.stopped):
                print(f"    {measured.caller.timeline(target)}")

        assert DeploymentRecord.objects.filter(project=env.project, kind="rollback", image=image).exists()
        for name, measured in figures.items():
            caller = measured.caller
            calls = caller.snapshot()
            # The caller kept its rate from before the change to the end.
            assert len(calls) >= RATE * (FETCH + LB_CACHE), (name, caller.summary())
            assert not caller.fetch_errors, (name, caller.fetch_errors)
            # The change did stop pods (every pod, but for the scale-in), and the caller was sending them
            # traffic until then.
            assert len(measured.stopped) == (1 if name.startswith("scale-in") else REPLICAS), (name, measured)
            served = {c.target for c in calls if c.ok}
            assert measured.stopped <= served and set(measured.after) <= served, (name, measured)
            if hook == "defaults":
                assert caller.failures() == [], (name, caller.summary(), caller.failures()[:10])
            else:
                failed = caller.failures()
                assert failed, (name, caller.summary())
                # Every failure is a request to a pod being stopped, still in the caller's caches.
                assert {c.target for c in failed} <= measured.stopped, (name, failed[:10])
    finally:
        # The pods of this case must not run on through the next one.
        k8s.CoreV1Api(kube_cluster.api_client).delete_namespace(env.namespace)
