"""Secret environment variables without a cluster: rendering, storage, audit, forms and API."""

import base64
import json
from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from clusters.workload import manifests, secret_env
from deploys import services
from deploys.models import OnboardingTicket
from deploys.selectors import ticket_version
from observability.models import AuditEvent
from observability.services import redact
from tests.fixtures.clusters import VALID_REQUEST
from tests.helpers.workload import make

SECRET = "s3cr3t-hunter2-value"
OTHER_SECRET = "another-Pa55word"


# --- the renderer ----------------------------------------------------------------------------------------


def _objects(spec) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in manifests.render(spec).objects}


def test_secret_names_become_secret_key_refs_and_a_secret_without_data():
    spec = make(env_vars=(("LOG_LEVEL", "info"),), secret_env_names=("DB_PASSWORD",), secret_env_digest="abc")
    rendered = manifests.render(spec)
    assert [o["kind"] for o in rendered.objects][:3] == ["Service", "Secret", "Deployment"]
    objects = _objects(spec)
    secret = objects["Secret"]
    assert secret["metadata"]["name"] == "orders-env"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "opsportal"
    assert secret["type"] == "Opaque"
    assert "data" not in secret and "stringData" not in secret
    template = objects["Deployment"]["spec"]["template"]
    env = template["spec"]["containers"][0]["env"]
    assert {"name": "LOG_LEVEL", "value": "info"} in env
    assert {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "orders-env", "key": "DB_PASSWORD"}},
    } in env
    assert template["metadata"]["annotations"][manifests.SECRET_ENV_DIGEST_ANNOTATION] == "abc"


def test_no_secret_names_render_no_secret_and_no_annotation():
    objects = _objects(make())
    assert "Secret" not in objects
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert manifests.SECRET_ENV_DIGEST_ANNOTATION not in annotations


def test_values_are_added_only_by_secret_with_values():
    secret = _objects(make(secret_env_names=("DB_PASSWORD",)))["Secret"]
    filled = manifests.secret_with_values(secret, {"DB_PASSWORD": SECRET})
    assert base64.b64decode(filled["data"]["DB_PASSWORD"]).decode() == SECRET
    assert "data" not in secret  # the rendered object is left alone


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"secret_env_names": ("1BAD",)}, "must match"),
        ({"secret_env_names": ("A", "A")}, "set twice"),
        (
            {"env_vars": (("DB_PASSWORD", "x"),), "secret_env_names": ("DB_PASSWORD",)},
            "both a plain and a secret",
        ),
        (
            {"language": "java", "cpu_request": "1", "secret_env_names": ("JAVA_TOOL_OPTIONS",)},
            "set by the platform",
        ),
    ],
)
def test_secret_names_follow_the_env_rules(changes, message):
    errors = manifests.spec_errors(replace(make(), **changes))
    assert message in " ".join(errors["secret_env_vars"]), errors


def test_spec_round_trip_keeps_the_names():
    spec = make(secret_env_names=("A", "B"), secret_env_digest="d")
    assert manifests.spec_from_dict(json.loads(json.dumps(manifests.spec_to_dict(spec)))) == spec


def test_digest_is_keyed_and_changes_with_any_value(settings):
    one = secret_env.digest({"A": "1"})
    assert one != secret_env.digest({"A": "2"}) and one == secret_env.digest({"A": "1"})
    assert secret_env.digest({}) == ""
    settings.SECRET_KEY = "another-key-entirely-" * 3
    assert secret_env.digest({"A": "1"}) != one


def test_redaction_shows_size_and_fingerprint_only():
    secret = manifests.secret_with_values(_objects(make(secret_env_names=("A",)))["Secret"], {"A": SECRET})
    shown = json.dumps(secret_env.redact_secret_object(secret))
    assert SECRET not in shown and base64.b64encode(SECRET.encode()).decode() not in shown
    assert f"<secret: {len(SECRET)} bytes, hmac " in shown


def test_audit_redaction_keeps_secret_names_but_not_values():
    changes = {"secret_env_names": [["A_PASSWORD", "B_TOKEN"], ["A_PASSWORD"]], "db_password": "x"}
    assert redact(changes) == {"secret_env_names": changes["secret_env_names"], "db_password": "[redacted]"}


# --- services: storage and audit -------------------------------------------------------------------------


def _raw_column(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret_env FROM {table} WHERE id = %s", [pk])  # noqa: S608 (fixed table)
        return cursor.fetchone()[0]


def _nowhere_in_audit(*values: str) -> None:
    dumped = json.dumps(list(AuditEvent.objects.values("changes", "target_repr")))
    for value in values:
        assert value not in dumped


def _file(people, secrets, **changes) -> OnboardingTicket:
    return services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request={**VALID_REQUEST, **changes},
        secret_env_vars=secrets,
    )


@pytest.mark.django_db
def test_values_are_stored_encrypted_and_only_names_in_the_request(people):
    ticket = _file(people, {"DB_PASSWORD": SECRET})
    assert ticket.request["secret_env_names"] == ["DB_PASSWORD"]
    assert SECRET not in json.dumps(ticket.request)
    raw = _raw_column("deploys_onboardingticket", ticket.pk)
    assert raw and SECRET not in raw and "DB_PASSWORD" not in raw  # names are inside the ciphertext too
    ticket.refresh_from_db()
    assert secret_env.load(ticket.secret_env) == {"DB_PASSWORD": SECRET}
    assert "s3cr3t" not in repr(secret_env.load(ticket.secret_env))
    audit = AuditEvent.objects.get(verb="ticket.create")
    assert audit.changes["secret_env_names"] == ["DB_PASSWORD"]
    _nowhere_in_audit(SECRET)


@pytest.mark.django_db
def test_edit_keeps_changes_and_removes_secrets_and_audits_names_only(people):
    ticket = _file(people, {"DB_PASSWORD": SECRET, "API_TOKEN": OTHER_SECRET})
    # No secret changes: the stored values stay.
    services.ticket_update(
        actor=people.developer, ticket_id=ticket.pk, request={**VALID_REQUEST, "replicas": 3}
    )
    ticket.refresh_from_db()
    assert secret_env.load(ticket.secret_env) == {"DB_PASSWORD": SECRET, "API_TOKEN": OTHER_SECRET}
    assert ticket.request["secret_env_names"] == ["API_TOKEN", "DB_PASSWORD"]

    services.ticket_update(
        actor=people.developer,
        ticket_id=ticket.pk,
        secret_env_vars={"DB_PASSWORD": "new-value-1", "API_TOKEN": ""},
    )
    ticket.refresh_from_db()
    assert secret_env.load(ticket.secret_env) == {"DB_PASSWORD": "new-value-1"}
    assert ticket.request["secret_env_names"] == ["DB_PASSWORD"]
    edit = AuditEvent.objects.filter(verb="ticket.edit").latest("id")
    assert edit.changes["secret_env_changes"] == {"changed": ["DB_PASSWORD"], "removed": ["API_TOKEN"]}
    assert edit.changes["secret_env_names"] == [["API_TOKEN", "DB_PASSWORD"], ["DB_PASSWORD"]]
    _nowhere_in_audit(SECRET, OTHER_SECRET, "new-value-1")

    # The same value again changes nothing and records nothing.
    count = AuditEvent.objects.count()
    services.ticket_update(
        actor=people.developer, ticket_id=ticket.pk, secret_env_vars={"DB_PASSWORD": "new-value-1"}
    )
    assert AuditEvent.objects.count() == count


@pytest.mark.django_db
def test_callers_cannot_smuggle_names_through_the_request(people):
    ticket = _file(people, None, secret_env_names=["GHOST"])
    assert "secret_env_names" not in ticket.request


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("secrets", "changes", "message"),
    [
        ({"1BAD": "x"}, {}, "must match"),
        ({"LOG_LEVEL": "x"}, {}, "both a plain and a secret"),
        ({"DB_PASSWORD": "a\0b"}, {}, "NUL"),
        ({"JAVA_TOOL_OPTIONS": "x"}, {}, "set by the platform"),
        ({"DB_PASSWORD": 5}, {}, "NAME: value"),
    ],
)
def test_bad_secrets_are_refused_and_nothing_is_written(people, secrets, changes, message):
    with pytest.raises(ValidationError) as refused:
        _file(people, secrets, **changes)
    assert message in " ".join(refused.value.message_dict["secret_env_vars"])
    assert not OnboardingTicket.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="ticket.").exists()


# --- API -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_takes_values_write_only_and_answers_names(client, people):
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": VALID_REQUEST, "secret_env_vars": {"DB_PASSWORD": SECRET}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret_env_names"] == ["DB_PASSWORD"]
    assert SECRET not in response.content.decode()
    ticket_url = f"/api/projects/orders/tickets/{body['id']}/"
    response = client.patch(
        ticket_url,
        {"secret_env_vars": {"DB_PASSWORD": "", "API_TOKEN": OTHER_SECRET}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["secret_env_names"] == ["API_TOKEN"]
    for url in (ticket_url, "/api/projects/orders/tickets/", f"{ticket_url}preview/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert SECRET not in page.content.decode() and OTHER_SECRET not in page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "secrets",
    [
        {"1BAD": "x"},
        {"LOG_LEVEL": "x"},
        {"DB_PASSWORD": "a\u0000b"},
        {"DB_PASSWORD": ["x"]},
        ["DB_PASSWORD=x"],
    ],
)
def test_api_bad_secrets_get_400_and_nothing_is_written(client, people, secrets):
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": VALID_REQUEST, "secret_env_vars": secrets},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "secret_env_vars" in response.json()["errors"]
    assert not OnboardingTicket.objects.exists()


# --- pages -----------------------------------------------------------------------------------------------


def _form_data(**changes) -> dict:
    return {**VALID_REQUEST, "environment": "test", "env_vars": "LOG_LEVEL=info", "submit": "1", **changes}


@pytest.mark.django_db
def test_form_files_secrets_and_pages_show_names_only(client, people):
    client.force_login(people.developer)
    response = client.post(
        "/projects/orders/tickets/new/",
        _form_data(secret_env_vars=f"DB_PASSWORD={SECRET}\nAPI_TOKEN={OTHER_SECRET}"),
    )
    assert response.status_code == 302
    ticket = OnboardingTicket.objects.get()
    assert secret_env.load(ticket.secret_env) == {"DB_PASSWORD": SECRET, "API_TOKEN": OTHER_SECRET}
    services.ticket_withdraw(actor=people.developer, ticket_id=ticket.pk)
    for url in (
        f"/projects/orders/tickets/{ticket.pk}/",
        f"/projects/orders/tickets/{ticket.pk}/edit/",
        f"/projects/orders/tickets/{ticket.pk}/preview/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        body = page.content.decode()
        assert SECRET not in body and OTHER_SECRET not in body, url
    edit_page = client.get(f"/projects/orders/tickets/{ticket.pk}/edit/").content.decode()
    assert 'id="secret-env-names"' in edit_page and "API_TOKEN" in edit_page

    # Saving with the field empty keeps both; NAME= removes one.
    edit = f"/projects/orders/tickets/{ticket.pk}/edit/"
    assert client.post(edit, _form_data(version=ticket_version(ticket))).status_code == 302
    ticket.refresh_from_db()
    assert set(secret_env.load(ticket.secret_env)) == {"DB_PASSWORD", "API_TOKEN"}
    response = client.post(edit, _form_data(secret_env_vars="API_TOKEN=", version=ticket_version(ticket)))
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert secret_env.load(ticket.secret_env) == {"DB_PASSWORD": SECRET}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1BAD=x", "must match"),
        ("LOG_LEVEL=x", "both a plain and a secret"),
        ("DB_PASSWORD=a\0b", "Null characters"),
        ("no equals sign", "is not NAME=value"),
    ],
)
def test_form_refuses_bad_secrets_without_echoing_them(client, people, text, message):
    client.force_login(people.developer)
    response = client.post("/projects/orders/tickets/new/", _form_data(secret_env_vars=text))
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["secret_env_vars"])
    assert message in errors, errors
    assert 'data-field="secret_env_vars"' in response.content.decode()
    assert "a\0b" not in response.content.decode()
    assert not OnboardingTicket.objects.exists()
