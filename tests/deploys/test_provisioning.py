"""Provisioning against the real local control plane: objects, idempotent retries, failures, preview."""

import pytest
from kubernetes import client as k8s

from clusters.models import ProjectEnvironment
from deploys import preview, services
from deploys.choices import TicketStatus
from deploys.models import OnboardingTicket
from observability.models import AuditEvent
from tests.fixtures.clusters import VALID_REQUEST
from tests.helpers.tickets import approved_ticket, run_provisioning

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def _objects(kube_cluster, namespace: str, name: str) -> dict:
    api = kube_cluster.api_client
    return {
        "service": k8s.CoreV1Api(api).read_namespaced_service(name, namespace),
        "deployment": k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace),
        "hpa": k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(name, namespace),
        "pdb": k8s.PolicyV1Api(api).read_namespaced_pod_disruption_budget(name, namespace),
    }


def test_approved_ticket_creates_service_deployment_and_hpa(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    ticket = run_provisioning(
        approved_ticket(people, local_clusters["test"], django_capture_on_commit_callbacks)
    )
    assert ticket.status == TicketStatus.ACTIVE, ticket.error
    namespace = local_clusters["test"].namespace_for("orders")
    objects = _objects(kube_cluster, namespace, "orders")

    assert objects["service"].spec.type == "ClusterIP"
    deployment = objects["deployment"]
    assert deployment.spec.replicas == 2
    assert deployment.status.available_replicas == 2
    container = deployment.spec.template.spec.containers[0]
    assert container.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert container.startup_probe.http_get.path == "/actuator/health"
    assert container.startup_probe.period_seconds * container.startup_probe.failure_threshold >= 90
    assert container.readiness_probe.timeout_seconds >= 3
    assert container.liveness_probe.timeout_seconds >= 3
    assert "sleep" in " ".join(container.lifecycle.pre_stop._exec.command)
    java_options = {e.name: e.value for e in container.env}["JAVA_TOOL_OPTIONS"]
    assert "-XX:ActiveProcessorCount=1" in java_options
    assert "-XX:MaxRAMPercentage" in java_options
    hpa = objects["hpa"]
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 5)
    assert [m.resource.name for m in hpa.spec.metrics] == ["cpu"]  # no memory scaling for Java
    assert objects["pdb"].spec.max_unavailable == 1

    assert {o["kind"] for o in ticket.live_objects} >= {"Service", "Deployment", "HorizontalPodAutoscaler"}
    environment = ProjectEnvironment.objects.get(project=people.project, environment="test")
    assert environment.namespace == namespace
    assert environment.cluster == local_clusters["test"]
    verbs = list(
        AuditEvent.objects.filter(target_type="deploys.onboardingticket", target_id=str(ticket.pk))
        .order_by("id")
        .values_list("verb", "actor_name")
    )
    assert verbs == [
        ("ticket.create", people.developer.username),
        ("ticket.submit", people.developer.username),
        ("ticket.approve", people.ops.username),
        ("ticket.provision.start", "system"),
        ("ticket.provision.succeed", "system"),
    ]
    assert any("Applying Deployment orders" in p["message"] for p in ticket.progress)


def test_load_balancer_ticket_creates_a_load_balancer_service(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    ticket = run_provisioning(
        approved_ticket(
            people, local_clusters["prod"], django_capture_on_commit_callbacks, service_type="LoadBalancer"
        )
    )
    assert ticket.status == TicketStatus.ACTIVE, ticket.error
    service = _objects(kube_cluster, local_clusters["prod"].namespace_for("orders"), "orders")["service"]
    assert service.spec.type == "LoadBalancer"
    assert service.spec.ports[0].port == 80


def test_retried_provisioning_leaves_exactly_the_same_objects(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    ticket = run_provisioning(
        approved_ticket(people, local_clusters["test"], django_capture_on_commit_callbacks)
    )
    assert ticket.status == TicketStatus.ACTIVE
    namespace = local_clusters["test"].namespace_for("orders")
    before = {
        kind: obj.metadata.resource_version
        for kind, obj in _objects(kube_cluster, namespace, "orders").items()
    }

    # The same message again (a duplicate delivery) finds the ticket done and changes nothing.
    assert run_provisioning(ticket).status == TicketStatus.ACTIVE
    # A worker that died after applying but before recording the outcome: the redelivered message
    # re-runs the same run, and applying again changes nothing in the cluster.
    OnboardingTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.PROVISIONING)
    assert run_provisioning(ticket).status == TicketStatus.ACTIVE
    after = {
        kind: obj.metadata.resource_version
        for kind, obj in _objects(kube_cluster, namespace, "orders").items()
    }
    assert after == before
    deployments = k8s.AppsV1Api(kube_cluster.api_client).list_namespaced_deployment(namespace).items
    assert [d.metadata.name for d in deployments] == ["orders"]


def test_unreachable_cluster_fails_the_ticket_with_the_cause_and_allows_retry(
    people, local_clusters, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATION_MAX_RETRIES = 0
    cluster = local_clusters["test"]
    ticket = approved_ticket(people, cluster, django_capture_on_commit_callbacks)
    cluster.api_url = "https://127.0.0.1:1"
    cluster.save()
    ticket = run_provisioning(ticket)
    assert ticket.status == TicketStatus.FAILED
    assert (
        "127.0.0.1:1" in ticket.error
        or "unreach" in ticket.error.lower()
        or "refused" in ticket.error.lower()
    )
    assert AuditEvent.objects.filter(verb="ticket.provision.fail", target_id=str(ticket.pk)).exists()

    # Ops fix the cluster and retry: the ticket provisions.
    cluster.refresh_from_db()
    from tests.fixtures.kube import KubeCluster  # noqa: F401 - documents where the server came from

    with django_capture_on_commit_callbacks(execute=False):
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.APPROVED
    assert AuditEvent.objects.filter(verb="ticket.retry", actor=people.ops).exists()


def test_preview_shows_yaml_then_a_diff_against_live(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    first = approved_ticket(people, local_clusters["test"], django_capture_on_commit_callbacks)
    before = preview.ticket_preview(ticket=first)
    assert not before.compare_error, before.compare_error
    assert {o.kind for o in before.objects} >= {"Service", "Deployment", "HorizontalPodAutoscaler"}
    assert not any(o.exists for o in before.objects)
    assert "kind: Deployment" in next(o.yaml for o in before.objects if o.kind == "Deployment")
    assert run_provisioning(first).status == TicketStatus.ACTIVE

    second = services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request={**VALID_REQUEST, "hpa_max": 9},
        submit=True,
    )
    after = preview.ticket_preview(ticket=second)
    assert not after.compare_error, after.compare_error
    hpa = next(o for o in after.objects if o.kind == "HorizontalPodAutoscaler")
    assert hpa.exists
    assert "-  maxReplicas: 5" in hpa.diff
    assert "+  maxReplicas: 9" in hpa.diff
    service = next(o for o in after.objects if o.kind == "Service")
    assert service.exists and service.diff == ""


def test_reprovisioning_keeps_the_replica_count_the_hpa_chose(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    first = run_provisioning(
        approved_ticket(people, local_clusters["test"], django_capture_on_commit_callbacks)
    )
    assert first.status == TicketStatus.ACTIVE
    namespace = local_clusters["test"].namespace_for("orders")
    apps = k8s.AppsV1Api(kube_cluster.api_client)
    apps.patch_namespaced_deployment_scale("orders", namespace, {"spec": {"replicas": 4}})  # as the HPA would

    second = run_provisioning(
        approved_ticket(people, local_clusters["test"], django_capture_on_commit_callbacks, hpa_max=9)
    )
    assert second.status == TicketStatus.ACTIVE, second.error
    assert apps.read_namespaced_deployment("orders", namespace).spec.replicas == 4
    hpa = k8s.AutoscalingV2Api(kube_cluster.api_client).read_namespaced_horizontal_pod_autoscaler(
        "orders", namespace
    )
    assert hpa.spec.max_replicas == 9
