"""The environment page in a real browser, over real Daphne, kept live by watches on the real cluster."""

import time

import pytest
from kubernetes import client as k8s

from tests.browser import sign_in
from tests.helpers.environments import provision
from tests.helpers.kubelet import crash_loop_status, patch_status, warning_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.kube,
]


def test_page_reflects_a_pod_deleted_in_the_cluster_within_two_seconds(
    people, local_clusters, kube_cluster, chromium, daphne_server
):
    env = provision(people, local_clusters["test"])
    page = sign_in(chromium, daphne_server, people.developer.username)
    page.goto(f"{daphne_server}/projects/orders/?tab=environments")
    page.click("#environment-table a")
    page.wait_for_selector("#env-live[data-state=open]")
    rows = page.locator("#pod-rows tr[data-pod]")
    assert rows.count() == 2
    victim = rows.first.get_attribute("data-pod")
    page.wait_for_selector('#hpa [data-field="range"]:has-text("2–5")')

    started = time.monotonic()
    k8s.CoreV1Api(kube_cluster.api_client).delete_namespaced_pod(victim, env.namespace)
    page.wait_for_selector(f'#pod-rows tr[data-pod="{victim}"]', state="detached", timeout=2_000)
    assert time.monotonic() - started < 2.5
    # The ReplicaSet's replacement appears without a reload.
    page.wait_for_function(
        "() => document.querySelectorAll('#pod-rows tr[data-pod]').length === 2", timeout=10_000
    )

    # Scaling outside the autoscaler's range is refused on the page, with the message.
    page.on("dialog", lambda dialog: dialog.accept())
    page.fill("#scale-replicas", "9")
    page.evaluate("document.getElementById('scale-replicas').removeAttribute('max')")
    page.click("#scale-form button")
    page.wait_for_selector('#action-result [data-ok="false"]:has-text("range 2–5")')
    page.context.close()  # its live socket would keep watching for the rest of the session


def test_config_change_is_applied_by_the_worker_and_followed_live(
    people, local_clusters, kube_cluster, chromium, daphne_server, celery_worker_process
):
    env = provision(people, local_clusters["test"])
    page = sign_in(chromium, daphne_server, people.ops.username)
    page.goto(f"{daphne_server}/projects/orders/env/test/config/")
    page.fill("#id_hpa_max", "6")
    page.click("#config-preview")
    page.wait_for_selector("#config-diff")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#config-apply")
    # The change's page, opened before the worker is done, follows it to the end without a reload.
    page.wait_for_selector("#change-progress")
    assert "/config/changes/" in page.url
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector("#change-state[data-status=applied]", timeout=60_000)
    assert page.evaluate("window.__sameDocument === true")  # HTMX swaps on live events, no reload
    log = page.locator("#change-progress").inner_text()
    assert "Applying HorizontalPodAutoscaler orders" in log and "The Deployment rolled out" in log
    hpa = k8s.AutoscalingV2Api(kube_cluster.api_client).read_namespaced_horizontal_pod_autoscaler(
        "orders", env.namespace
    )
    assert hpa.spec.max_replicas == 6


def test_a_crash_looping_pod_is_flagged_live_with_its_cause_and_warnings(
    people, local_clusters, kube_cluster, chromium, daphne_server
):
    env = provision(people, local_clusters["test"])
    page = sign_in(chromium, daphne_server, people.developer.username)
    page.goto(f"{daphne_server}/projects/orders/env/test/")
    page.wait_for_selector("#env-live[data-state=open]")
    victim = page.locator("#pod-rows tr[data-pod]").first.get_attribute("data-pod")
    assert page.locator("#pod-rows tr.pod-problem").count() == 0
    page.wait_for_selector('#hpa [data-field="cpu"]:has-text("target 70%")')

    pod = k8s.CoreV1Api(kube_cluster.api_client).read_namespaced_pod(victim, env.namespace)
    patch_status(kube_cluster, env.namespace, victim, crash_loop_status(pod, restarts=3, exit_code=143))
    flag = page.wait_for_selector(
        f'#pod-rows tr.pod-problem[data-problem-for="{victim}"][data-reason="CrashLoopBackOff"]',
        timeout=10_000,
    )
    assert "raise the start-up budget" in flag.inner_text()
    assert "restarted 3 times" in flag.inner_text() and "last exit 143" in flag.inner_text()
    row = page.locator(f'#pod-rows tr[data-pod="{victim}"]')
    assert row.get_attribute("data-ready") == "false" and row.get_attribute("data-restarts") == "3"
    assert "Error (exit 143)" in row.locator(".pod-last-termination").inner_text()

    warning_event(
        kube_cluster, env.namespace, victim, reason="Unhealthy", message="Startup probe failed", count=5
    )
    page.wait_for_selector(
        f'#warning-rows tr[data-warning="Unhealthy"][data-warning-pod="{victim}"] '
        '.warning-count:has-text("×5")',
        timeout=10_000,
    )

    patch_status(
        kube_cluster,
        env.namespace,
        victim,
        crash_loop_status(pod, restarts=4, exit_code=137, reason="OOMKilled"),
    )
    oom = page.wait_for_selector('#pod-rows tr.pod-problem[data-reason="OOMKilled"]', timeout=10_000)
    assert "raise the memory limit" in oom.inner_text()
    page.context.close()
