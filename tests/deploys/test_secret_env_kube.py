"""Secret environment variables against the real local control plane: provisioning, idempotence, the
config editor (page and API), removal, and that no value shows up in pages, API answers, diffs or audit."""

import base64
import json

import pytest
from django.db import connection
from django.urls import reverse
from kubernetes import client as k8s

from clusters.models import ConfigChange, ProjectEnvironment
from clusters.selectors.environments import config_version
from clusters.workload import fields as workload_fields
from clusters.workload import manifests, secret_env
from deploys import services
from deploys.choices import TicketStatus
from integrations.kubernetes.client import KubeClient
from observability.models import AuditEvent
from tests.fixtures.clusters import VALID_REQUEST
from tests.helpers.environments import run_change
from tests.helpers.tickets import run_provisioning

pytestmark = [pytest.mark.django_db, pytest.mark.kube]

DB_PASSWORD = "db-Pa55word-4-orders"
API_TOKEN = "tok-0123456789abcdef"
NEW_DB_PASSWORD = "rotated-Pa55word-5"
ALL_VALUES = (DB_PASSWORD, API_TOKEN, NEW_DB_PASSWORD)


def _onboard(people, cluster, django_capture_on_commit_callbacks, secrets: dict):
    ticket = services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment=cluster.environment,
        request=VALID_REQUEST,
        secret_env_vars=secrets,
        submit=True,
    )
    with django_capture_on_commit_callbacks(execute=False):
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk, cluster_id=cluster.pk)
    ticket.refresh_from_db()
    return run_provisioning(ticket)


def _live(kube_cluster, namespace: str):
    api = kube_cluster.api_client
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment("orders", namespace)
    secret = k8s.CoreV1Api(api).read_namespaced_secret("orders-env", namespace)
    return deployment, secret


def _secret_data(secret) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _secret_refs(deployment) -> dict[str, tuple[str, str]]:
    env = deployment.spec.template.spec.containers[0].env or []
    return {
        e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
        for e in env
        if e.value_from and e.value_from.secret_key_ref
    }


def _annotation(deployment) -> str | None:
    return (deployment.spec.template.metadata.annotations or {}).get(manifests.SECRET_ENV_DIGEST_ANNOTATION)


def _assert_nowhere(text: str) -> None:
    for value in ALL_VALUES:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("changes", "target_repr", "verb")))


@pytest.fixture
def onboarded(people, local_clusters, django_capture_on_commit_callbacks):
    ticket = _onboard(
        people,
        local_clusters["test"],
        django_capture_on_commit_callbacks,
        {"DB_PASSWORD": DB_PASSWORD, "API_TOKEN": API_TOKEN},
    )
    assert ticket.status == TicketStatus.ACTIVE, ticket.error
    return ticket


def test_provisioning_applies_the_secret_and_references_it(people, local_clusters, kube_cluster, onboarded):
    namespace = local_clusters["test"].namespace_for("orders")
    deployment, secret = _live(kube_cluster, namespace)
    assert _secret_data(secret) == {"DB_PASSWORD": DB_PASSWORD, "API_TOKEN": API_TOKEN}
    assert secret.type == "Opaque"
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "opsportal"
    assert "opsportal" in {m.manager for m in secret.metadata.managed_fields}
    assert _secret_refs(deployment) == {
        "API_TOKEN": ("orders-env", "API_TOKEN"),
        "DB_PASSWORD": ("orders-env", "DB_PASSWORD"),
    }
    assert _annotation(deployment) == secret_env.digest({"DB_PASSWORD": DB_PASSWORD, "API_TOKEN": API_TOKEN})
    assert deployment.status.available_replicas == 2
    assert any(p["message"] == "Applying Secret orders-env" for p in onboarded.progress)

    environment = ProjectEnvironment.objects.get(project=people.project, environment="test")
    assert environment.spec["request"]["secret_env_names"] == ["API_TOKEN", "DB_PASSWORD"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_env, spec::text FROM deploys_projectenvironment WHERE id = %s", [environment.pk]
        )
        raw, spec_text = cursor.fetchone()
        cursor.execute(
            "SELECT secret_env, request::text FROM deploys_onboardingticket WHERE id = %s", [onboarded.pk]
        )
        raw_ticket, request_text = cursor.fetchone()
    for text in (raw, spec_text, raw_ticket, request_text):
        _assert_nowhere(text)
    assert raw and raw_ticket
    _assert_nowhere(_audit_text())


def test_provisioning_twice_changes_nothing(
    people, local_clusters, kube_cluster, onboarded, django_capture_on_commit_callbacks
):
    namespace = local_clusters["test"].namespace_for("orders")
    before = [obj.metadata.resource_version for obj in _live(kube_cluster, namespace)]
    # A second ticket asking for the same thing runs the whole provisioning again.
    again = _onboard(
        people,
        local_clusters["test"],
        django_capture_on_commit_callbacks,
        {"DB_PASSWORD": DB_PASSWORD, "API_TOKEN": API_TOKEN},
    )
    assert again.status == TicketStatus.ACTIVE, again.error
    assert any(p["message"] == "Applying Secret orders-env" for p in again.progress)
    assert [obj.metadata.resource_version for obj in _live(kube_cluster, namespace)] == before


def test_ticket_preview_against_live_shows_keys_not_values(
    client, people, local_clusters, kube_cluster, onboarded
):
    ticket = services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request=VALID_REQUEST,
        secret_env_vars={"DB_PASSWORD": NEW_DB_PASSWORD, "API_TOKEN": API_TOKEN},
    )
    client.force_login(people.ops)
    response = client.get(f"/api/projects/orders/tickets/{ticket.pk}/preview/")
    assert response.status_code == 200
    body = response.json()
    assert body["compare_error"] == ""
    secret = next(o for o in body["objects"] if o["kind"] == "Secret")
    assert secret["exists"] and "DB_PASSWORD: '<secret:" in secret["yaml"]
    changed = [line for line in secret["diff"].splitlines() if line[:1] in "+-" and "DB_PASSWORD" in line]
    assert len(changed) == 2, secret["diff"]  # the changed key shows up as a changed line
    assert "API_TOKEN" not in "".join(line for line in secret["diff"].splitlines() if line[:1] in "+-")
    _assert_nowhere(response.content.decode())
    page = client.get(f"/projects/orders/tickets/{ticket.pk}/preview/")
    assert page.status_code == 200
    _assert_nowhere(page.content.decode())


def _config_form(environment, **changes) -> dict:
    request = environment.spec["request"]
    data = {
        key: request.get(key) if request.get(key) is not None else ""
        for key in workload_fields.names(workload_fields.Use.CONFIG)
        if key != "env_vars"
    }
    data["env_vars"] = "LOG_LEVEL=info"
    data["version"] = config_version(ProjectEnvironment.objects.get(pk=environment.pk).spec)
    data.update(changes)
    return data


def _stored_secret(change_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_env FROM clusters_configchange WHERE id = %s", [change_id])
        return cursor.fetchone()[0]


def _queued(client, django_capture_on_commit_callbacks, method, *args, **kwargs):
    """Send an apply and return the response with the change it queued (its task message is held back)."""
    with django_capture_on_commit_callbacks(execute=False):
        response = getattr(client, method)(*args, **kwargs)
    change = ConfigChange.objects.order_by("-id").first()
    return response, change


def test_config_editor_changes_and_removes_secrets(
    client, people, local_clusters, kube_cluster, onboarded, django_capture_on_commit_callbacks
):
    namespace = local_clusters["test"].namespace_for("orders")
    environment = ProjectEnvironment.objects.get(project=people.project, environment="test")
    url = reverse("environment-config", args=["orders", "test"])
    api = "/api/projects/orders/environments/test/config/"
    client.force_login(people.ops)
    deployment, secret = _live(kube_cluster, namespace)
    annotation, versions = (
        _annotation(deployment),
        (deployment.metadata.resource_version, secret.metadata.resource_version),
    )

    for other in (
        reverse("environment-page", args=["orders", "test"]),
        "/api/projects/orders/environments/test/",
    ):
        response = client.get(other)
        assert response.status_code == 200, other
        _assert_nowhere(response.content.decode())
    page = client.get(url)
    assert page.status_code == 200
    assert 'id="secret-env-names"' in page.content.decode() and "DB_PASSWORD" in page.content.decode()
    _assert_nowhere(page.content.decode())
    assert client.get(api).json()["secret_env_names"] == ["API_TOKEN", "DB_PASSWORD"]

    # Preview: which key changes, and the rolling annotation, without the values; nothing applied.
    edit = _config_form(environment, secret_env_vars=f"DB_PASSWORD={NEW_DB_PASSWORD}")
    preview = client.post(url, {**edit, "step": "preview"})
    assert preview.status_code == 200, preview.content
    diff = preview.context["plan"].diff
    assert "DB_PASSWORD: '<secret:" in diff and manifests.SECRET_ENV_DIGEST_ANNOTATION in diff
    assert preview.context["plan"].changes["secret_env_changes"] == {"changed": ["DB_PASSWORD"]}
    _assert_nowhere(preview.content.decode())
    deployment, secret = _live(kube_cluster, namespace)
    assert (deployment.metadata.resource_version, secret.metadata.resource_version) == versions

    # Apply: the Secret holds the new value and the pod template's annotation changed, so pods roll.
    response, change = _queued(
        client, django_capture_on_commit_callbacks, "post", url, {**edit, "step": "apply"}
    )
    assert response.status_code == 302
    # The pending values wait for the worker encrypted, and are gone once the change ends.
    stored = _stored_secret(change.pk)
    assert stored
    _assert_nowhere(stored)
    assert secret_env.load(change.secret_env)["DB_PASSWORD"] == NEW_DB_PASSWORD
    change = run_change(change)
    assert change.status == "applied", change.error
    assert _stored_secret(change.pk) == "" and change.secret_env == ""
    _assert_nowhere(json.dumps(change.progress) + change.diff + json.dumps(change.changes))
    detail = client.get(reverse("environment-config-change", args=["orders", "test", change.pk]))
    _assert_nowhere(detail.content.decode())
    deployment, secret = _live(kube_cluster, namespace)
    assert _secret_data(secret) == {"DB_PASSWORD": NEW_DB_PASSWORD, "API_TOKEN": API_TOKEN}
    assert _annotation(deployment) not in (None, annotation)
    environment.refresh_from_db()
    assert secret_env.load(environment.secret_env)["DB_PASSWORD"] == NEW_DB_PASSWORD
    event = AuditEvent.objects.filter(verb="environment.config.update").latest("id")
    assert event.changes["secret_env_changes"] == {"changed": ["DB_PASSWORD"]}

    # Remove one through the API: the key leaves the Secret and the env entry leaves the Deployment.
    response, change = _queued(
        client,
        django_capture_on_commit_callbacks,
        "put",
        api,
        {"request": {}, "secret_env_vars": {"API_TOKEN": ""}},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    assert response.json()["config"]["secret_env_names"] == ["DB_PASSWORD"]
    assert run_change(change).status == "applied"
    deployment, secret = _live(kube_cluster, namespace)
    assert _secret_data(secret) == {"DB_PASSWORD": NEW_DB_PASSWORD}
    assert set(_secret_refs(deployment)) == {"DB_PASSWORD"}

    # Applying the same again changes nothing (once the rollout's own status updates are over).
    with KubeClient.from_cluster(local_clusters["test"]) as kube:
        assert kube.wait_for_deployment(namespace, "orders", timeout=90).succeeded
    deployment, secret = _live(kube_cluster, namespace)
    versions = (deployment.metadata.resource_version, secret.metadata.resource_version)
    again = client.put(
        api, {"request": {}, "secret_env_vars": {"API_TOKEN": ""}}, content_type="application/json"
    )
    assert again.status_code == 200 and again.json()["applied"] is False
    deployment, secret = _live(kube_cluster, namespace)
    assert (deployment.metadata.resource_version, secret.metadata.resource_version) == versions

    # Removing the last one empties the Secret and drops the reference and the annotation.
    response, change = _queued(
        client,
        django_capture_on_commit_callbacks,
        "put",
        api,
        {"request": {}, "secret_env_vars": {"DB_PASSWORD": ""}},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    assert run_change(change).status == "applied"
    deployment, secret = _live(kube_cluster, namespace)
    assert _secret_data(secret) == {}
    assert _secret_refs(deployment) == {} and _annotation(deployment) is None
    environment.refresh_from_db()
    assert "secret_env_names" not in environment.spec["request"] and environment.secret_env == ""
    _assert_nowhere(response.content.decode())
    _assert_nowhere(_audit_text())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"1BAD": "x"}, "must match"),
        ({"LOG_LEVEL": "x"}, "both a plain and a secret"),
        ({"DB_PASSWORD": "a\u0000b"}, "Null characters"),
    ],
)
def test_bad_secret_edits_change_nothing(
    client, people, local_clusters, kube_cluster, onboarded, changes, message
):
    namespace = local_clusters["test"].namespace_for("orders")
    environment = ProjectEnvironment.objects.get(project=people.project, environment="test")
    stored = environment.secret_env
    versions = [obj.metadata.resource_version for obj in _live(kube_cluster, namespace)]
    client.force_login(people.ops)
    url = reverse("environment-config", args=["orders", "test"])
    text = "\n".join(f"{name}={value}" for name, value in changes.items())
    for step in ("preview", "apply"):
        response = client.post(url, {**_config_form(environment, secret_env_vars=text), "step": step})
        assert response.status_code == 400
        assert message in " ".join(response.context["form"].errors["secret_env_vars"])
    response = client.put(
        "/api/projects/orders/environments/test/config/",
        {"request": {}, "secret_env_vars": changes},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "secret_env_vars" in response.json()["errors"]
    environment.refresh_from_db()
    assert secret_env.load(environment.secret_env) == secret_env.load(stored)
    assert [obj.metadata.resource_version for obj in _live(kube_cluster, namespace)] == versions
    assert not AuditEvent.objects.filter(verb="environment.config.update").exists()
    assert not ConfigChange.objects.exists()
