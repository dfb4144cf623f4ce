"""The onboarding main path in a real browser, a real worker, real Daphne and the real control plane."""

import pytest
from kubernetes import client as k8s

from observability.models import AuditEvent
from tests.browser import sign_in

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.kube,
]


def test_developer_files_ops_approve_objects_appear(
    people, local_clusters, kube_cluster, chromium, daphne_server, celery_worker_process
):
    developer = sign_in(chromium, daphne_server, people.developer.username)
    developer.goto(f"{daphne_server}/projects/orders/?tab=environments")
    developer.click("text=Onboard to test")
    developer.fill("#id_replicas", "3")
    developer.fill("#id_hpa_min", "3")
    developer.fill("#id_hpa_max", "10")
    developer.fill("#id_cpu_request", "1 core")
    developer.click("#submit-ticket")
    # Bad input comes back as a form error, and nothing is filed.
    assert "is not a Kubernetes quantity" in developer.locator('[data-field="cpu_request"]').inner_text()
    developer.fill("#id_cpu_request", "1")
    developer.fill("#id_memory_request", "1Gi")
    developer.select_option("#id_service_type", "LoadBalancer")
    developer.click("#submit-ticket")
    developer.wait_for_selector("#ticket-state[data-status=submitted]")
    ticket_url = developer.url
    assert developer.locator("#approve-ticket").count() == 0

    ops = sign_in(chromium, daphne_server, people.ops.username)
    ops.goto(ticket_url)
    ops.wait_for_selector("#ticket-preview details")  # the rendered YAML preview
    assert "kind: HorizontalPodAutoscaler" in ops.locator("#ticket-preview").text_content()
    ops.on("dialog", lambda dialog: dialog.accept())
    ops.click("#approve-ticket")
    # The page follows provisioning live until the Deployment is available.
    ops.wait_for_selector("#ticket-state[data-status=active]", timeout=90_000)
    # The developer's page, left open, caught up by itself.
    developer.wait_for_selector("#ticket-state[data-status=active]", timeout=30_000)

    namespace = local_clusters["test"].namespace_for("orders")
    api = kube_cluster.api_client
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment("orders", namespace)
    assert deployment.spec.replicas == 3
    assert deployment.spec.template.spec.containers[0].resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert k8s.CoreV1Api(api).read_namespaced_service("orders", namespace).spec.type == "LoadBalancer"
    hpa = k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("orders", namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 10)

    ops.goto(f"{daphne_server}/audit/?project=orders")
    audit = ops.locator("#audit-table").inner_text()
    for verb in ("ticket.submit", "ticket.approve", "ticket.provision.succeed"):
        assert verb in audit
    assert AuditEvent.objects.get(verb="ticket.approve").actor == people.ops
