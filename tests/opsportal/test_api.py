import re

import pytest
import yaml
from django.urls import reverse
from openapi_spec_validator import validate
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_schema_is_a_valid_openapi_3_document(client, people):
    client.force_login(people.developer)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    validate(document)
    assert "/api/me/" in document["paths"]
    assert "/api/projects/{name}/" in document["paths"]


def test_api_docs_page_uses_local_assets(client, people):
    client.force_login(people.developer)
    body = client.get("/api/docs/").content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in body
    # Not a bare "cdn" substring: the page embeds a random CSRF token, which sometimes contains it.
    external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+""", body, re.IGNORECASE)
    assert external == []
    assert not re.search(r"jsdelivr|unpkg|cdnjs", body, re.IGNORECASE)


def test_me_with_session(client, people):
    client.force_login(people.ops)
    data = client.get(reverse("api-me")).json()
    assert data["username"] == people.ops.username
    assert data["is_ops"] is True
    assert data["projects"] == ["orders"]


def test_me_with_token():
    from django.contrib.auth.models import User

    from opsportal.tokens import token_issue

    user = User.objects.create_user("api-user", password="x-very-long-password")
    key = token_issue(user=user)
    api = APIClient()
    assert api.get(reverse("api-me")).status_code in {401, 403}
    # The stored digest is not a key.
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
    assert api.get(reverse("api-me")).status_code in {401, 403}
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    data = api.get(reverse("api-me")).json()
    assert data["username"] == "api-user"
    assert data["is_ops"] is False


def test_token_endpoint_issues_a_token(people):
    from tests.fixtures.people import PASSWORD

    api = APIClient()
    bad = api.post(reverse("api-token"), {"username": people.developer.username, "password": "nope"})
    assert bad.status_code == 400
    good = api.post(reverse("api-token"), {"username": people.developer.username, "password": PASSWORD})
    assert good.status_code == 200
    from opsportal.authentication import token_digest

    # Only the digest is stored; the clear key is in this answer alone.
    assert Token.objects.get(user=people.developer).key == token_digest(good.json()["token"])
    assert not Token.objects.filter(key=good.json()["token"]).exists()


def test_api_errors_are_json_with_detail(client, people):
    client.force_login(people.outsider)
    response = client.get("/api/projects/orders/")
    assert response.status_code == 404
    assert response.json()["detail"]
    bad = client.get("/api/audit-events/?since=garbage")
    assert bad.status_code == 400
    assert "since" in bad.json()["errors"]


def test_issuing_a_token_is_audited_without_the_token(people):
    from observability.models import AuditEvent
    from tests.fixtures.people import PASSWORD

    api = APIClient()
    credentials = {"username": people.developer.username, "password": PASSWORD}
    assert api.post(reverse("api-token"), {**credentials, "password": "nope"}).status_code == 400
    assert not AuditEvent.objects.filter(verb__startswith="token.").exists()
    first = api.post(reverse("api-token"), credentials)
    again = api.post(reverse("api-token"), credentials)
    assert first.status_code == again.status_code == 200
    key = first.json()["token"]
    events = list(AuditEvent.objects.filter(verb__startswith="token.").order_by("pk"))
    assert [event.verb for event in events] == ["token.create", "token.rotate"]
    assert key != again.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(reverse("api-me")).status_code in {401, 403}  # replaced by the second
    api.credentials(HTTP_AUTHORIZATION=f"Token {again.json()['token']}")
    assert api.get(reverse("api-me")).status_code == 200
    for event in events:
        assert event.actor == people.developer
        assert event.target_repr == people.developer.username
        assert event.remote_addr == "127.0.0.1"
        stored = " ".join(str(value) for value in vars(event).values())
        assert key not in stored


def test_tokens_issued_before_digests_keep_working(people):
    from importlib import import_module

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    clear = "0123456789abcdef0123456789abcdef01234567"
    Token.objects.create(user=people.viewer, key=clear)  # as DRF stored keys before
    migration = import_module("projects.migrations.0005_api_token_digests")
    migration.keep_only_digests(MigrationLoader(connection).project_state().apps, None)

    assert not Token.objects.filter(key=clear).exists()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {clear}")
    assert api.get(reverse("api-me")).json()["username"] == people.viewer.username
