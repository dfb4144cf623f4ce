"""Optimistic concurrency on ticket edits: an edit made on a ticket someone else changed since is refused,
naming what changed and by whom, and writes nothing (no cluster needed)."""

import re

import pytest

from deploys import services
from deploys.models import OnboardingTicket
from deploys.selectors import ticket_version
from observability.models import AuditEvent
from opsportal.errors import StateConflict
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(people) -> OnboardingTicket:
    return services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=dict(VALID_REQUEST)
    )


def _edit_url(ticket) -> str:
    return f"/projects/orders/tickets/{ticket.pk}/edit/"


def _api_url(ticket) -> str:
    return f"/api/projects/orders/tickets/{ticket.pk}/"


def _loaded_form(client, ticket, **changes) -> dict:
    """What an editor's browser posts: the version hidden in the page they loaded, and their edits."""
    page = client.get(_edit_url(ticket))
    assert page.status_code == 200
    version = re.search(r'name="version" value="([0-9a-f]+)"', page.content.decode()).group(1)
    return {**VALID_REQUEST, "env_vars": "LOG_LEVEL=info", "version": version, **changes}


def _snapshot(ticket):
    ticket.refresh_from_db()
    return ticket.request, ticket.overrides, AuditEvent.objects.count()


def test_service_refuses_a_stale_edit_naming_the_change_and_its_author(people, draft):
    loaded = ticket_version(draft)
    services.ticket_update(
        actor=people.developer, ticket_id=draft.pk, request={**draft.request, "replicas": 3}, version=loaded
    )
    before = _snapshot(draft)
    with pytest.raises(StateConflict) as refused:
        services.ticket_update(
            actor=people.ops, ticket_id=draft.pk, request={**VALID_REQUEST, "hpa_max": 6}, version=loaded
        )
    message = str(refused.value)
    assert f"Ticket #{draft.pk} was changed since you loaded it" in message
    assert "replicas: 2 → 3" in message and people.developer.username in message
    assert "Nothing was saved" in message
    assert _snapshot(draft) == before
    # The same edit made on the current version goes through.
    services.ticket_update(
        actor=people.ops,
        ticket_id=draft.pk,
        request={**draft.request, "hpa_max": 6},
        version=ticket_version(draft),
    )
    draft.refresh_from_db()
    assert draft.request["replicas"] == 3 and draft.request["hpa_max"] == 6


def test_only_the_edits_after_the_loaded_version_are_named(people, draft):
    services.ticket_update(
        actor=people.developer, ticket_id=draft.pk, request={**draft.request, "replicas": 3}
    )
    draft.refresh_from_db()
    loaded = ticket_version(draft)
    services.ticket_update(actor=people.ops, ticket_id=draft.pk, request={**draft.request, "hpa_max": 7})
    draft.refresh_from_db()
    with pytest.raises(StateConflict) as refused:
        services.ticket_update(
            actor=people.developer, ticket_id=draft.pk, request=draft.request, version=loaded
        )
    message = str(refused.value)
    assert "hpa_max: 5 → 7" in message and people.ops.username in message
    assert "replicas" not in message and people.developer.username not in message


def test_page_second_editor_is_refused_with_the_change_then_succeeds_after_reloading(client, people, draft):
    client.force_login(people.ops)
    ops_form = _loaded_form(client, draft, cpu_request="750m")
    client.force_login(people.developer)
    developer_form = _loaded_form(client, draft, replicas="3")
    assert client.post(_edit_url(draft), developer_form).status_code == 302

    before = _snapshot(draft)
    client.force_login(people.ops)
    stale = client.post(_edit_url(draft), ops_form)
    assert stale.status_code == 200
    errors = " ".join(stale.context["form"].non_field_errors())
    assert "replicas: 2 → 3" in errors and people.developer.username in errors
    assert "replicas: 2 → 3" in stale.content.decode()
    assert _snapshot(draft) == before
    assert draft.request["replicas"] == 3 and draft.request["cpu_request"] == "500m"

    fresh = client.post(_edit_url(draft), _loaded_form(client, draft, cpu_request="750m", replicas="3"))
    assert fresh.status_code == 302
    draft.refresh_from_db()
    assert draft.request["replicas"] == 3 and draft.request["cpu_request"] == "750m"
    assert AuditEvent.objects.filter(verb="ticket.edit").count() == 2


def test_page_form_without_a_version_is_refused(client, people, draft):
    client.force_login(people.developer)
    form = _loaded_form(client, draft, replicas="3")
    del form["version"]
    before = _snapshot(draft)
    response = client.post(_edit_url(draft), form)
    assert response.status_code == 200
    assert "reload the page" in " ".join(response.context["form"].non_field_errors())
    assert _snapshot(draft) == before


def test_api_version_is_in_the_representation_and_a_stale_one_is_409(client, people, draft):
    client.force_login(people.developer)
    got = client.get(_api_url(draft))
    loaded = got.json()["version"]
    assert loaded == ticket_version(draft) and got["ETag"] == f'"{loaded}"'
    first = client.patch(
        _api_url(draft),
        {"request": {**VALID_REQUEST, "replicas": 3}, "version": loaded},
        content_type="application/json",
    )
    assert first.status_code == 200, first.content
    assert first.json()["version"] != loaded

    before = _snapshot(draft)
    client.force_login(people.ops)
    for stale in (
        client.patch(
            _api_url(draft),
            {"request": {**VALID_REQUEST, "hpa_max": 6}, "version": loaded},
            content_type="application/json",
        ),
        client.patch(
            _api_url(draft),
            {"request": {**VALID_REQUEST, "hpa_max": 6}},
            content_type="application/json",
            HTTP_IF_MATCH=f'"{loaded}"',
        ),
    ):
        assert stale.status_code == 409, stale.content
        body = stale.json()
        assert set(body) == {"detail", "errors"}
        assert "replicas: 2 → 3" in body["detail"] and people.developer.username in body["detail"]
    assert _snapshot(draft) == before

    current = client.get(_api_url(draft))["ETag"]
    fresh = client.patch(
        _api_url(draft),
        {"request": {**draft.request, "hpa_max": 6}},
        content_type="application/json",
        HTTP_IF_MATCH=current,
    )
    assert fresh.status_code == 200, fresh.content
    # Without a version the API takes the edit as it is, as before (the version is optional there).
    unversioned = client.patch(
        _api_url(draft),
        {"request": {**fresh.json()["request"], "hpa_max": 7}},
        content_type="application/json",
    )
    assert unversioned.status_code == 200, unversioned.content
    draft.refresh_from_db()
    assert draft.request["replicas"] == 3 and draft.request["hpa_max"] == 7
