"""Thirty browser pages on one environment share one watch per kind: counted in the apiserver's own
/metrics, with Daphne's threads counted in /proc, against real Daphne, Chromium and the control plane."""

import os
import time

import pytest
from kubernetes import client as k8s

from tests.browser import sign_in
from tests.helpers.environments import provision
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


def _pod_rows(page, count: int) -> None:
    page.wait_for_function(
        # A function, not an expression string: Playwright evaluates strings with eval, which the CSP forbids.
        f"() => document.querySelectorAll('#pod-rows tr[data-pod]').length === {count}",
        timeout=30_000,
    )


def test_thirty_viewers_share_one_watch_per_kind_and_daphne_threads_stay_bounded(
    people, local_clusters, kube_cluster, chromium, daphne_server
):
    env = provision(people, local_clusters["test"])
    baseline = _steady_watches(kube_cluster)
    threads_idle = _threads(daphne_server.pid)
    url = f"{daphne_server}/projects/orders/env/test/"

    # The first viewer opens the watches: one per kind, five threads, nothing more.
    first = sign_in(chromium, daphne_server, people.developer.username)
    first.goto(url)
    first.wait_for_selector("#env-live[data-state=open]")
    _pod_rows(first, 2)
    _wait_watching(kube_cluster, baseline, 1, "one watch per kind for one viewer", daphne_server.pid)
    threads_one = _threads(daphne_server.pid)
    assert threads_one <= threads_idle + 5 + THREAD_SLACK

    # 29 more pages in the same Chromium: each shows the state from the shared watches.
    pages = [first, *(first.context.new_page() for _ in range(VIEWERS - 1))]
    try:
        for page in pages[1:]:
            page.goto(url, wait_until="commit")
        for page in pages:
            page.wait_for_selector("#env-live[data-state=open]", timeout=60_000)
            _pod_rows(page, 2)
            page.wait_for_selector('#hpa [data-field="range"]:has-text("2–5")')
        assert _watching(kube_cluster, baseline, 1), kube_cluster.namespaced_watches()
        threads_thirty = _threads(daphne_server.pid)
        assert threads_thirty <= threads_one + THREAD_SLACK, (threads_idle, threads_one, threads_thirty)

        # A change in the cluster reaches every page without a reload.
        k8s.AppsV1Api(kube_cluster.api_client).patch_namespaced_deployment_scale(
            "orders", env.namespace, {"spec": {"replicas": 3}}
        )
        for page in pages:
            _pod_rows(page, 3)
        assert _watching(kube_cluster, baseline, 1), kube_cluster.namespaced_watches()
    finally:
        first.context.close()

    # The last viewer gone, the watches end on the apiserver and their threads in Daphne.
    _wait_watching(
        kube_cluster, baseline, 0, "the watches to stop after the last viewer left", daphne_server.pid
    )
    until(
        "Daphne's watch threads to end",
        lambda: _threads(daphne_server.pid) <= threads_idle + THREAD_SLACK,
    )
