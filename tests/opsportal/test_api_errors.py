"""One API error shape: produced by the one exception handler for every kind of error, and documented in
the OpenAPI schema as the response of every error an operation can give."""

import socket

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from clusters.choices import AuthType
from clusters.models import ProjectEnvironment
from clusters.services import clusters as cluster_services
from observability.models import AuditEvent
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"
# Writes that take no body on purpose: the path says everything (an action on the object it names).
BODYLESS = {
    ("post", "/api/projects/{name}/alerts/{id}/acknowledge/"),
    ("post", "/api/channels/{id}/test/"),
    ("post", "/api/projects/{name}/channels/{id}/test/"),
    ("post", "/api/clusters/{id}/test-connection/"),
    ("post", "/api/clusters/prometheus-config/apply/"),
    ("post", "/api/log-pipelines/{id}/deploy/"),
    ("post", "/api/projects/{name}/environments/{environment}/restart/"),
    ("post", "/api/projects/{name}/releases/{id}/cancel/"),
    ("post", "/api/projects/{name}/releases/{id}/confirm/"),
    ("post", "/api/projects/{name}/releases/{id}/promote/"),
    ("post", "/api/projects/{name}/tickets/{id}/submit/"),
    ("post", "/api/projects/{name}/tickets/{id}/withdraw/"),
    ("post", "/api/terminal-grants/{id}/revoke/"),
    ("post", "/api/worker-ping/"),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        # --fail-on-warn: two components with one name (or an enum resolved by a hash) is a warning.
        call_command("spectacular", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


def _assert_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], dict)
    return body


def test_every_write_in_the_schema_declares_its_request_body(schema):
    writes = [(m, p, op) for m, p, op in _operations(schema) if m in ("post", "put", "patch")]
    assert writes
    missing = {(m, p) for m, p, op in writes if "requestBody" not in op} - BODYLESS
    assert missing == set()
    stale = BODYLESS - {(m, p) for m, p, _op in writes}
    assert stale == set(), "listed as bodyless but no longer in the schema"
    create = schema["paths"]["/api/projects/"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"]["$ref"] == "#/components/schemas/ProjectCreate"


def test_every_error_response_in_the_schema_is_the_one_error_component(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "errors"}
    codes_seen = set()
    for method, path, operation in _operations(schema):
        for code, response in operation["responses"].items():
            if code[0] not in "45":
                continue
            codes_seen.add(code)
            content = response["content"]
            assert set(content) == {"application/json"}, (method, path, code)
            assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, (method, path, code)
    assert codes_seen == {"400", "403", "404", "409", "415", "502"}
    config = schema["paths"]["/api/projects/{name}/environments/{environment}/config/"]["put"]
    assert {"400", "403", "404", "409", "415", "502"} <= set(config["responses"])
    token = schema["paths"]["/api/token/"]["post"]
    assert "403" not in token["responses"] and "409" not in token["responses"]


def test_component_names_are_unique_and_nested_inputs_are_named(schema):
    names = set(schema["components"]["schemas"])
    assert "Input" not in names
    assert {"EnvironmentScaleInput", "EnvironmentConfigInput"} <= names
    scale = schema["paths"]["/api/projects/{name}/environments/{environment}/scale/"]["post"]
    config = schema["paths"]["/api/projects/{name}/environments/{environment}/config/"]["put"]
    refs = [op["requestBody"]["content"]["application/json"]["schema"]["$ref"] for op in (scale, config)]
    assert refs == [
        "#/components/schemas/EnvironmentScaleInput",
        "#/components/schemas/EnvironmentConfigInput",
    ]


def test_validation_errors_have_the_shape(client, people):
    client.force_login(people.developer)
    bad = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": {**VALID_REQUEST, "replicas": 0}},
        content_type="application/json",
    )
    body = _assert_shape(bad, 400)
    assert body["detail"] == "Invalid input." and "replicas" in body["errors"]
    query = _assert_shape(client.get("/api/audit-events/?since=garbage"), 400)
    assert "since" in query["errors"]


def test_service_errors_keep_their_fields_and_the_rest_is_under_non_field_errors(client, people):
    client.force_login(people.ops)
    response = client.post(
        "/api/clusters/",
        {"name": "x", "environment": "test", "auth_type": "kubeconfig", "credential": "not: a kubeconfig"},
        content_type="application/json",
    )
    body = _assert_shape(response, 400)
    assert "credential" in body["errors"] and body["detail"] == "Invalid input."
    assert all(isinstance(m, str) for m in body["errors"]["credential"])
    # The service's ValidationError without a field: its message is the detail too.
    owner = client.delete(f"/api/projects/orders/members/{people.owner.username}/")
    body = _assert_shape(owner, 400)
    assert list(body["errors"]) == ["non_field_errors"]
    assert "owner cannot be removed" in body["detail"]
    assert body["detail"] == body["errors"]["non_field_errors"][0]


def test_not_found_forbidden_and_signed_out_have_the_shape(client, people):
    client.force_login(people.outsider)
    _assert_shape(client.get("/api/projects/orders/"), 404)
    _assert_shape(client.get("/api/projects/orders/tickets/999/"), 404)
    client.force_login(people.developer)
    forbidden = _assert_shape(client.post("/api/projects/", {}, content_type="application/json"), 403)
    assert "ops" in forbidden["detail"]
    _assert_shape(APIClient().get("/api/me/"), 403)


def test_state_conflict_is_409_with_the_shape(client, people):
    client.force_login(people.developer)
    data = {"environment": "test", "request": VALID_REQUEST, "submit": True}
    first = client.post("/api/projects/orders/tickets/", data, content_type="application/json")
    assert first.status_code == 201, first.content
    body = _assert_shape(
        client.post("/api/projects/orders/tickets/", data, content_type="application/json"), 409
    )
    assert "still open" in body["detail"] and body["errors"] == {}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cluster_is_502_with_the_shape(client, people):
    cluster = cluster_services.cluster_create(
        actor=people.ops,
        name="gone",
        environment="test",
        auth_type=AuthType.TOKEN,
        credential="token-of-a-cluster-that-is-not-there",
        api_url=f"https://127.0.0.1:{_closed_port()}",
        verify_tls=False,
    )
    ProjectEnvironment.objects.create(
        project=people.project,
        environment="test",
        cluster=cluster,
        namespace="orders-test",
        spec={"request": VALID_REQUEST, "overrides": {}},
    )
    audited = AuditEvent.objects.count()
    client.force_login(people.ops)
    response = client.post("/api/projects/orders/environments/test/restart/")
    body = _assert_shape(response, 502)
    assert body["errors"] == {}
    assert AuditEvent.objects.count() == audited


def test_a_body_no_parser_reads_is_a_415_in_the_one_error_shape(client, people):
    client.force_login(people.owner)
    answer = client.generic(
        "PATCH",
        f"/api/projects/{people.project.name}/settings/",
        b"<settings/>",
        content_type="application/xml",
    )
    assert answer.status_code == 415
    assert set(answer.json()) == {"detail", "errors"} and "application/xml" in answer.json()["detail"]
    people.project.refresh_from_db()
    assert people.project.auto_rollback is False  # nothing written


@pytest.mark.django_db
def test_an_api_path_no_route_matches_is_a_404_in_the_one_error_shape(client, people):
    client.force_login(people.ops)
    for path in ("/api/clusters/-1/", "/api/no-such-thing/", "/api/projects/orders/environments/test/nope/"):
        answer = client.patch(path, {}, content_type="application/json")
        assert answer.status_code == 404, path
        assert answer["Content-Type"] == "application/json"
        assert answer.json() == {"detail": "Not found.", "errors": {}}
    # Pages keep the portal's page.
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
