"""Thirty viewers of one environment share one watch per kind: counted on the apiserver's own /metrics,
with Daphne's threads counted in /proc, against real Daphne, Chromium and the local control plane."""

import os
import time

import pytest
from django.test import Client
from kubernetes import client as k8s

from tests.browser import sign_in
from tests.clusters.test_environment_page import provision
from tests.livews import EnvironmentViewer
from tests.polling import until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.kube,
]

VIEWERS = 30
# What an environment page watches, as the apiserver's metric names the resources.
RESOURCES = ("pods", "deployments", "horizontalpodautoscalers", "services", "events")
# Threads Daphne may add with load whatever the number of viewers: its executors grow to a fixed size.
THREAD_SLACK = 8


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _watching(kube_cluster, baseline: dict[str, int], extra: int) -> bool:
    now = kube_cluster.namespaced_watches()
    return all(now.get(r, 0) == baseline.get(r, 0) + extra for r in RESOURCES)


def _wait_watching(kube_cluster, baseline: dict[str, int], extra: int, what: str, pid: int) -> None:
    try:
        until(what, lambda: _watching(kube_cluster, baseline, extra))
    except AssertionError as exc:
        now = kube_cluster.namespaced_watches()
        raise AssertionError(f"{exc}: {baseline=} {now=} daphne threads={_threads(pid)}") from None


def _steady_watches(kube_cluster) -> dict[str, int]:
    """The watches open before the test, read until two readings a second apart agree."""

    def steady():
        first = kube_cluster.namespaced_watches()
        time.sleep(1)
        return first if first == kube_cluster.namespaced_watches() else None

    return until("a steady count of watches", steady)


def _complete(pods: int):
    def done(latest: dict) -> bool:
        return {"pods", "deployment", "hpa", "service", "events"} <= set(latest) and (
            len(latest["pods"]["items"]) == pods
        )

    return done


def test_thirty_viewers_share_one_watch_per_kind_and_daphne_threads_stay_bounded(
    people, local_clusters, kube_cluster, chromium, daphne_server
):
    env = provision(people, local_clusters["test"])
    baseline = _steady_watches(kube_cluster)
    threads_idle = _threads(daphne_server.pid)

    # The first viewer is a real page in Chromium; it opens the watches.
    page = sign_in(chromium, daphne_server, people.developer.username)
    page.goto(f"{daphne_server}/projects/orders/env/test/")
    page.wait_for_selector("#env-live[data-state=open]")
    _wait_watching(kube_cluster, baseline, 1, "one watch per kind for one viewer", daphne_server.pid)
    threads_one = _threads(daphne_server.pid)
    assert threads_one <= threads_idle + 5 + THREAD_SLACK  # five watch threads, and nothing per viewer

    # 29 more viewers, as WebSocket clients with their own sessions (several people, one environment).
    cookies = [_cookie(user) for user in (people.developer, people.viewer, people.ops, people.owner)]
    viewers = [
        EnvironmentViewer(daphne_server, cookies[i % len(cookies)], "orders", "test")
        for i in range(VIEWERS - 1)
    ]
    try:
        for viewer in viewers:  # each gets the current state at once, from the shared watches
            state = viewer.until(_complete(2))
            assert state["deployment"]["item"]["name"] == "orders"
            assert state["hpa"]["item"]["max_replicas"] == 5
        assert _watching(kube_cluster, baseline, 1), kube_cluster.namespaced_watches()
        threads_thirty = _threads(daphne_server.pid)
        assert threads_thirty <= threads_one + THREAD_SLACK, (threads_idle, threads_one, threads_thirty)

        # A change in the cluster reaches every viewer, the browser page included.
        k8s.AppsV1Api(kube_cluster.api_client).patch_namespaced_deployment_scale(
            "orders", env.namespace, {"spec": {"replicas": 3}}
        )
        for viewer in viewers:
            state = viewer.until(
                lambda latest: _complete(3)(latest) and latest["deployment"]["item"]["replicas"] == 3
            )
            assert len(state["pods"]["items"]) == 3
        page.wait_for_function(
            "document.querySelectorAll('#pod-rows tr[data-pod]').length === 3", timeout=20_000
        )
        assert _watching(kube_cluster, baseline, 1), kube_cluster.namespaced_watches()
    finally:
        for viewer in viewers:
            viewer.close()
        page.context.close()

    # The last viewer gone, the watches end on the apiserver and their threads in Daphne.
    _wait_watching(
        kube_cluster, baseline, 0, "the watches to stop after the last viewer left", daphne_server.pid
    )
    until(
        "Daphne's watch threads to end",
        lambda: _threads(daphne_server.pid) <= threads_idle + THREAD_SLACK,
    )
