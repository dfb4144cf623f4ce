"""Hardening at the edge: NUL bytes, the API docs' access, settings refused in production."""

import json
import os
import subprocess
import sys
from urllib.parse import urlencode

import pytest
from django.conf import settings

from deploys.models import OnboardingTicket
from opsportal.security import websocket_origin_allowed
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
NUL_MESSAGE = "Input must not contain NUL (\\0) characters."


def test_api_json_with_nul_gets_400_in_the_one_error_shape(client, people):
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": {**VALID_REQUEST, "image": "registry.local/orders:1\x00"}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": NUL_MESSAGE,
        "errors": {"request": [f"{NUL_MESSAGE} (request.image)"]},
    }
    nested = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": {**VALID_REQUEST, "env_vars": [["A", "x\x00"]]}},
        content_type="application/json",
    )
    assert nested.status_code == 400
    assert nested.json()["errors"] == {"request": [f"{NUL_MESSAGE} (request.env_vars.0.1)"]}
    assert not OnboardingTicket.objects.exists()


def test_a_malformed_content_length_is_no_server_error(client, people):
    client.force_login(people.developer)
    response = client.generic(
        "POST",
        "/api/projects/orders/tickets/",
        json.dumps({"environment": "test", "request": VALID_REQUEST}),
        content_type="application/json",
        CONTENT_LENGTH="not-a-number",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"detail", "errors"}
    assert not OnboardingTicket.objects.exists()


def test_api_query_string_with_nul_gets_400(client, people):
    client.force_login(people.ops)
    response = client.get("/api/tickets/", {"status": "submitted\x00"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"status": [NUL_MESSAGE]}


def test_page_form_with_nul_gets_400_and_creates_nothing(client, people):
    client.force_login(people.developer)
    data = {**VALID_REQUEST, "environment": "test", "image": "registry.local/orders:1\x00", "env_vars": ""}
    # Posted as a browser posts an ordinary form (urlencoded); a multipart form reports it as a field error.
    response = client.post("/projects/orders/tickets/new/", urlencode(data), content_type=FORM)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()
    assert "image" in response.content.decode()
    assert not OnboardingTicket.objects.exists()
    # The same form without the NUL is answered by the form itself (no 400 from the edge).
    multipart = client.post("/projects/orders/tickets/new/", data)
    assert multipart.status_code == 200
    assert "Null characters" in " ".join(multipart.context["form"].errors["image"])
    assert not OnboardingTicket.objects.exists()
    data["image"] = "registry.local/orders:1"
    assert client.post("/projects/orders/tickets/new/", urlencode(data), content_type=FORM).status_code == 302


# --- production settings ----------------------------------------------------------------------

VALID_FERNET = "VGVzdEtleVRlc3RLZXlUZXN0S2V5VGVzdEtleTEyMzQ="
_PRINT_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.OPSPORTAL_API_DOCS_PUBLIC]))"
)


def _load_settings(**env_vars) -> subprocess.CompletedProcess:
    """Import the production settings module in a fresh process with the given environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OPSPORTAL_"))}
    env.update(DJANGO_SETTINGS_MODULE="opsportal.settings", OPSPORTAL_SECRETS_KEYS=VALID_FERNET, **env_vars)
    return subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("key", ["change-me", "short-key"])
def test_placeholder_secret_key_is_refused_when_debug_is_off(key):
    refused = _load_settings(DJANGO_SECRET_KEY=key, DJANGO_DEBUG="false")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert "DJANGO_SECRET_KEY is the placeholder from .env.example" in refused.stderr
    # DEBUG runs may keep it (the developer's own machine).
    assert _load_settings(DJANGO_SECRET_KEY=key, DJANGO_DEBUG="true").returncode == 0


def test_https_settings_come_from_the_environment():
    good_key = "k" * 50
    served = _load_settings(
        DJANGO_SECRET_KEY=good_key, DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto=https"
    )
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout) == [["HTTP_X_FORWARDED_PROTO", "https"], 31_536_000, False]
    plain = _load_settings(
        DJANGO_SECRET_KEY=good_key,
        DJANGO_SECURE_COOKIES="false",
        DJANGO_SECURE_HSTS_SECONDS="",
        OPSPORTAL_API_DOCS_PUBLIC="true",
    )
    assert json.loads(plain.stdout) == [None, 0, True]
    bad = _load_settings(DJANGO_SECRET_KEY=good_key, DJANGO_SECURE_PROXY_SSL_HEADER="https")
    assert "must look like X-Forwarded-Proto=https" in bad.stderr


def test_hsts_only_on_requests_the_trusted_proxy_marks_secure(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    secure = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/login/")


# --- API schema and docs ----------------------------------------------------------------------


def test_api_schema_and_docs_need_a_login(client, people):
    schema = client.get("/api/schema/")
    assert schema.status_code in (401, 403)
    assert "paths" not in schema.content.decode()
    docs = client.get("/api/docs/")
    assert docs.status_code == 302
    assert docs["Location"].startswith("/login/?next=/api/docs/")
    client.force_login(people.viewer)
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_a_setting_opens_the_api_schema_and_docs(client, settings):
    settings.OPSPORTAL_API_DOCS_PUBLIC = True
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert "/api/projects/" in schema.content.decode()
    assert client.get("/api/docs/").status_code == 200


# --- WebSocket Origin -------------------------------------------------------------------------


def _scope(origin: str | None, host: str = "portal.example.com", scheme: str = "ws", **headers) -> dict:
    pairs = [(b"host", host.encode())]
    if origin is not None:
        pairs.append((b"origin", origin.encode()))
    pairs += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "websocket", "scheme": scheme, "headers": pairs}


def test_origin_check_compares_scheme_host_and_port(settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://ops.example.com", "https://*.corp.example.com"]
    assert websocket_origin_allowed(_scope("http://portal.example.com"))
    assert websocket_origin_allowed(_scope("http://portal.example.com:80"))
    assert not websocket_origin_allowed(_scope("http://portal.example.com:8080"))
    assert not websocket_origin_allowed(_scope("https://portal.example.com"))
    assert not websocket_origin_allowed(_scope("http://evil.example.com"))
    assert not websocket_origin_allowed(_scope(None))
    assert not websocket_origin_allowed(_scope("null"))
    # Served over TLS: the page's origin is https on 443.
    assert websocket_origin_allowed(_scope("https://portal.example.com", scheme="wss"))
    assert not websocket_origin_allowed(_scope("http://portal.example.com", scheme="wss"))
    # A host that is not allowed never counts as our own origin.
    assert not websocket_origin_allowed(_scope("http://other.example.com", host="other.example.com"))
    # Configured trusted origins, exact or with Django's subdomain wildcard.
    assert websocket_origin_allowed(_scope("https://ops.example.com"))
    assert not websocket_origin_allowed(_scope("https://ops.example.com:8443"))
    assert not websocket_origin_allowed(_scope("http://ops.example.com"))
    assert websocket_origin_allowed(_scope("https://a.corp.example.com"))
    assert not websocket_origin_allowed(_scope("https://corp.example.com.evil.io"))


def test_origin_check_honours_the_proxy_header_setting(settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    behind_tls = _scope("https://portal.example.com", x_forwarded_proto="https")
    settings.SECURE_PROXY_SSL_HEADER = None
    assert not websocket_origin_allowed(behind_tls)  # the header is not trusted unless configured
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert websocket_origin_allowed(behind_tls)
    assert not websocket_origin_allowed(_scope("http://portal.example.com", x_forwarded_proto="https"))
