"""Hardening at the edge: NUL bytes, the API docs' access, settings refused in production."""

import pytest

from deploys.models import OnboardingTicket
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db

NUL_MESSAGE = "Input must not contain NUL (\\0) characters."


def test_api_json_with_nul_gets_400_in_the_one_error_shape(client, people):
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": {**VALID_REQUEST, "image": "registry.local/orders:1\x00"}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {"detail": NUL_MESSAGE, "errors": {"request.image": [NUL_MESSAGE]}}
    nested = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": {**VALID_REQUEST, "env_vars": [["A", "x\x00"]]}},
        content_type="application/json",
    )
    assert nested.status_code == 400
    assert nested.json()["errors"] == {"request.env_vars.0.1": [NUL_MESSAGE]}
    assert not OnboardingTicket.objects.exists()


def test_api_query_string_with_nul_gets_400(client, people):
    client.force_login(people.ops)
    response = client.get("/api/tickets/", {"status": "submitted\x00"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"status": [NUL_MESSAGE]}


def test_page_form_with_nul_gets_400_and_creates_nothing(client, people):
    client.force_login(people.developer)
    data = {**VALID_REQUEST, "environment": "test", "image": "registry.local/orders:1\x00", "env_vars": ""}
    response = client.post("/projects/orders/tickets/new/", data)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()
    assert "image" in response.content.decode()
    assert not OnboardingTicket.objects.exists()
    # The same form without the NUL is answered by the form itself (no 400 from the edge).
    data["image"] = "registry.local/orders:1"
    assert client.post("/projects/orders/tickets/new/", data).status_code in (200, 302)
