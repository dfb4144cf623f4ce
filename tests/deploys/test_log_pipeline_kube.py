"""A service sending its logs to the cluster's log pipeline, against the real local control plane:
provisioning puts LOG_REDIS_URL (from the env Secret, the proxy's password inside) and LOG_REDIS_KEY into
the Deployment; the ops configuration page turns it on (refused while the cluster has no pipeline) and
off; a changed password reaches the Secret at the next configuration apply; and the password shows up in
no page, API answer, diff, stored row or audit event."""

import base64
import json

import pytest
from django.db import connection
from django.urls import reverse
from kubernetes import client as k8s

from clusters.models import LogPipeline, ProjectEnvironment
from clusters.selectors.environments import config_version
from clusters.workload import fields as workload_fields
from clusters.workload import manifests, secret_env
from deploys.choices import TicketStatus
from observability.models import AuditEvent
from tests.helpers.environments import run_change
from tests.helpers.tickets import approved_ticket, run_provisioning

pytestmark = [pytest.mark.django_db, pytest.mark.kube]

PASSWORD = "Pr0xy-pa55-for-logs"
NEW_PASSWORD = "R0tated-proxy-pa55"


def _live(kube_cluster, namespace: str):
    api = kube_cluster.api_client
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment("orders", namespace)
    secrets = k8s.CoreV1Api(api).list_namespaced_secret(namespace, field_selector="metadata.name=orders-env")
    return deployment, (secrets.items[0] if secrets.items else None)


def _secret_data(secret) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in ((secret and secret.data) or {}).items()}


def _log_env(deployment) -> dict:
    env = deployment.spec.template.spec.containers[0].env or []
    result = {}
    for entry in env:
        if not entry.name.startswith("LOG_REDIS_"):
            continue
        ref = entry.value_from.secret_key_ref if entry.value_from else None
        result[entry.name] = ("secret", ref.name, ref.key) if ref else entry.value
    return result


def _annotation(deployment) -> str | None:
    return (deployment.spec.template.metadata.annotations or {}).get(manifests.SECRET_ENV_DIGEST_ANNOTATION)


def _assert_no_password(text: str) -> None:
    for password in (PASSWORD, NEW_PASSWORD):
        assert password not in text
        assert base64.b64encode(password.encode()).decode() not in text


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("verb", "changes", "target_repr")))


def _stored_rows() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT request::text, secret_env, progress::text FROM deploys_onboardingticket")
        tickets = cursor.fetchall()
        cursor.execute("SELECT spec::text, secret_env, live_objects::text FROM deploys_projectenvironment")
        environments = cursor.fetchall()
        cursor.execute("SELECT request::text, changes::text, diff, secret_env FROM clusters_configchange")
        changes = cursor.fetchall()
    return json.dumps([tickets, environments, changes])


def _provisioned(people, cluster, capture, **changes):
    ticket = run_provisioning(approved_ticket(people, cluster, capture, **changes))
    assert ticket.status == TicketStatus.ACTIVE, ticket.error
    return ticket


def test_provisioning_gives_the_service_the_pipeline_from_the_env_secret(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    cluster = local_clusters["test"]
    pipeline = LogPipeline.objects.create(
        cluster=cluster, kafka_bootstrap_servers="kafka:9092", password=PASSWORD
    )
    ticket = _provisioned(people, cluster, django_capture_on_commit_callbacks, logs_to_pipeline=True)

    deployment, secret = _live(kube_cluster, cluster.namespace_for("orders"))
    assert _log_env(deployment) == {
        "LOG_REDIS_URL": ("secret", "orders-env", "LOG_REDIS_URL"),
        "LOG_REDIS_KEY": "logs:orders:test",
    }
    assert _secret_data(secret) == {"LOG_REDIS_URL": pipeline.redis_url()}
    assert f":{PASSWORD}@" in pipeline.redis_url()
    assert _annotation(deployment) == secret_env.digest({"LOG_REDIS_URL": pipeline.redis_url()})
    assert deployment.status.available_replicas == 2
    assert any(p["message"] == "Applying Secret orders-env" for p in ticket.progress)

    # The URL is read from the pipeline whenever objects are rendered, never stored with the environment.
    environment = ProjectEnvironment.objects.get(project=people.project, environment="test")
    assert environment.secret_env == "" and environment.spec["request"]["logs_to_pipeline"] is True
    _assert_no_password(_stored_rows())
    _assert_no_password(_audit_text())


def _config_form(environment, **changes) -> dict:
    request = environment.spec["request"]
    data = {
        key: request.get(key) if request.get(key) is not None else ""
        for key in workload_fields.names(workload_fields.Use.CONFIG)
        if key not in ("env_vars", "logs_to_pipeline")
    }
    if request.get("logs_to_pipeline"):
        data["logs_to_pipeline"] = "on"
    data["env_vars"] = "\n".join(f"{k}={v}" for k, v in request.get("env_vars") or [])
    data["version"] = config_version(ProjectEnvironment.objects.get(pk=environment.pk).spec)
    data.update(changes)
    return data


def _queued(capture, send):
    from clusters.models import ConfigChange

    with capture(execute=False):
        response = send()
    return response, ConfigChange.objects.order_by("-id").first()


def test_ops_turn_it_on_from_the_configuration_page_and_a_changed_password_reaches_the_secret(
    client, people, local_clusters, kube_cluster, django_capture_on_commit_callbacks
):
    cluster = local_clusters["test"]
    namespace = cluster.namespace_for("orders")
    _provisioned(people, cluster, django_capture_on_commit_callbacks)
    environment = ProjectEnvironment.objects.get(project=people.project, environment="test")
    deployment, secret = _live(kube_cluster, namespace)
    assert _log_env(deployment) == {} and secret is None
    url = reverse("environment-config", args=["orders", "test"])
    api = "/api/projects/orders/environments/test/config/"
    client.force_login(people.ops)
    page = client.get(url).content.decode()
    assert 'name="logs_to_pipeline"' in page and 'class="form-check-input"' in page

    # An untouched form changes nothing, though the stored request predates the switch.
    assert "logs_to_pipeline" not in environment.spec["request"]
    response = client.post(url, {**_config_form(environment), "step": "preview"})
    assert response.status_code == 200
    assert "logs_to_pipeline" not in response.context["plan"].changes

    # Without a pipeline on the cluster: refused on the field, nothing recorded or applied.
    for step in ("preview", "apply"):
        response = client.post(url, {**_config_form(environment, logs_to_pipeline="on"), "step": step})
        assert response.status_code == 400
        errors = response.context["form"].errors["logs_to_pipeline"]
        assert errors == [
            f"The cluster {cluster.name} has no log pipeline yet: ops must set one up for it before a "
            "service can send its logs there, or turn this off."
        ]
    assert not AuditEvent.objects.filter(verb="environment.config.update").exists()

    pipeline = LogPipeline.objects.create(
        cluster=cluster, kafka_bootstrap_servers="kafka:9092", password=PASSWORD
    )
    edit = {**_config_form(environment, logs_to_pipeline="on")}
    preview = client.post(url, {**edit, "step": "preview"})
    assert preview.status_code == 200, preview.content
    plan = preview.context["plan"]
    assert plan.changes["logs_to_pipeline"] == [False, True]
    assert "LOG_REDIS_KEY" in plan.diff and "logs:orders:test" in plan.diff
    assert "secretKeyRef" in plan.diff
    assert [(d.kind, d.exists) for d in plan.diffs if d.kind == "Secret"] == [("Secret", False)]
    _assert_no_password(preview.content.decode())

    response, change = _queued(
        django_capture_on_commit_callbacks, lambda: client.post(url, {**edit, "step": "apply"})
    )
    assert response.status_code == 302
    assert run_change(change).status == "applied"
    deployment, secret = _live(kube_cluster, namespace)
    assert _log_env(deployment)["LOG_REDIS_URL"] == ("secret", "orders-env", "LOG_REDIS_URL")
    assert _secret_data(secret) == {"LOG_REDIS_URL": pipeline.redis_url()}
    first = _annotation(deployment)

    # The password changes: the next apply (nothing else edited) shows it as a changed Secret and rolls.
    pipeline.password = NEW_PASSWORD
    pipeline.save()
    dry = client.put(api, {"request": {}, "dry_run": True}, content_type="application/json")
    assert dry.status_code == 200, dry.content
    assert "LOG_REDIS_URL: '<secret:" in dry.content.decode()
    _assert_no_password(dry.content.decode())
    response, change = _queued(
        django_capture_on_commit_callbacks,
        lambda: client.put(api, {"request": {}}, content_type="application/json"),
    )
    assert response.status_code == 202, response.content
    assert run_change(change).status == "applied"
    deployment, secret = _live(kube_cluster, namespace)
    assert _secret_data(secret) == {"LOG_REDIS_URL": pipeline.redis_url()}
    assert f":{NEW_PASSWORD}@" in pipeline.redis_url()
    assert _annotation(deployment) not in (None, first)

    # Off again: the key leaves the Secret, the variables and the annotation leave the Deployment.
    response, change = _queued(
        django_capture_on_commit_callbacks,
        lambda: client.put(api, {"request": {"logs_to_pipeline": False}}, content_type="application/json"),
    )
    assert response.status_code == 202, response.content
    assert run_change(change).status == "applied"
    deployment, secret = _live(kube_cluster, namespace)
    assert _log_env(deployment) == {} and _annotation(deployment) is None
    assert _secret_data(secret) == {}

    _assert_no_password(_stored_rows())
    _assert_no_password(_audit_text())
