"""Onboarding tickets: filing, review, permissions and bad input (no cluster needed)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from deploys import services
from deploys.choices import TicketStatus
from deploys.models import OnboardingTicket
from observability.models import AuditEvent
from opsportal.errors import StateConflict
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db


def _file(people, **changes):
    return services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request={**VALID_REQUEST, **changes},
        submit=True,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hpa_min": 6, "hpa_max": 3}, "hpa_min"),
        ({"replicas": 0}, "replicas"),
        ({"cpu_request": "1 core"}, "cpu_request"),
        ({"container_port": 70000}, "container_port"),
        ({"service_port": 0}, "service_port"),
        ({"startup_seconds": -5}, "startup_seconds"),
        ({"replicas": "three"}, "replicas"),
        ({"env_vars": [["1BAD", "x"]]}, "env_vars"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(people, changes, field):
    with pytest.raises(ValidationError) as refused:
        _file(people, **changes)
    assert field in refused.value.message_dict, refused.value.message_dict
    assert not OnboardingTicket.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="ticket.").exists()


def test_viewer_cannot_file_and_developer_cannot_approve(people):
    with pytest.raises(PermissionDenied):
        services.ticket_create(
            actor=people.viewer, project=people.project, environment="test", request=VALID_REQUEST
        )
    ticket = _file(people)
    with pytest.raises(PermissionDenied):
        services.ticket_approve(actor=people.developer, ticket_id=ticket.pk)
    with pytest.raises(PermissionDenied):
        services.ticket_reject(actor=people.owner, ticket_id=ticket.pk, reason="no")


def test_one_open_ticket_per_environment(people):
    first = _file(people)
    with pytest.raises(StateConflict, match=f"#{first.pk}"):
        _file(people)
    # Production is another environment.
    services.ticket_create(
        actor=people.developer, project=people.project, environment="prod", request=VALID_REQUEST
    )


def test_ops_edit_is_audited_with_its_diff_and_overrides(people):
    ticket = _file(people)
    services.ticket_update(
        actor=people.ops,
        ticket_id=ticket.pk,
        request={**VALID_REQUEST, "hpa_max": 8},
        overrides={"probe_timeout_seconds": 5},
    )
    event = AuditEvent.objects.get(verb="ticket.edit")
    assert event.actor == people.ops
    assert event.changes["hpa_max"] == [5, 8]
    assert event.changes["override:probe_timeout_seconds"] == [None, 5]


def test_developer_cannot_override_guardrails_or_edit_after_submit(people):
    draft = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=VALID_REQUEST
    )
    with pytest.raises(ValidationError, match="Only ops"):
        services.ticket_update(
            actor=people.developer, ticket_id=draft.pk, overrides={"probe_timeout_seconds": 1}
        )
    services.ticket_submit(actor=people.developer, ticket_id=draft.pk)
    with pytest.raises(StateConflict):
        services.ticket_update(
            actor=people.developer, ticket_id=draft.pk, request={**VALID_REQUEST, "replicas": 3}
        )


def test_reject_needs_a_reason_and_is_final(people):
    ticket = _file(people)
    with pytest.raises(ValidationError):
        services.ticket_reject(actor=people.ops, ticket_id=ticket.pk, reason="  ")
    services.ticket_reject(actor=people.ops, ticket_id=ticket.pk, reason="Use the shared Redis instead.")
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.REJECTED
    with pytest.raises(StateConflict):
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk)


def test_approve_without_a_cluster_says_what_to_do(people):
    ticket = _file(people)
    with pytest.raises(ValidationError, match="No test cluster"):
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SUBMITTED


# --- API -------------------------------------------------------------------------------------


def test_api_bad_input_gets_400_with_field_errors(client, people):
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": {**VALID_REQUEST, "cpu_request": "1 core"}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "cpu_request" in response.json()["errors"]
    assert "1 core" in str(response.json()["errors"]["cpu_request"])
    assert not OnboardingTicket.objects.exists()


def test_api_permissions(client, people):
    ticket = _file(people)
    url = f"/api/projects/orders/tickets/{ticket.pk}/"
    client.force_login(people.outsider)
    assert client.get(url).status_code == 404
    assert client.post(url + "approve/").status_code == 404
    client.force_login(people.developer)
    assert client.post(url + "approve/").status_code == 403
    client.force_login(people.viewer)
    assert client.get(url).status_code == 200
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "prod", "request": VALID_REQUEST},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_api_conflict_is_409(client, people):
    _file(people)
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "test", "request": VALID_REQUEST},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert "still open" in response.json()["detail"]


def test_project_api_rejects_bad_names(client, people):
    client.force_login(people.ops)
    response = client.post(
        "/api/projects/",
        {"name": "Bad_Name", "language": "go", "owner": "oscar-owner"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


# --- pages -----------------------------------------------------------------------------------


def test_form_shows_errors_and_creates_nothing(client, people):
    client.force_login(people.developer)
    data = {
        **VALID_REQUEST,
        "environment": "test",
        "hpa_min": 9,
        "hpa_max": 3,
        "cpu_request": "1 core",
        "env_vars": "LOG_LEVEL=info",
        "submit": "1",
    }
    response = client.post("/projects/orders/tickets/new/", data)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-field="cpu_request"' in body
    assert 'data-field="hpa_min"' in body
    assert not OnboardingTicket.objects.exists()


def test_form_files_a_ticket_and_shows_guardrails(client, people):
    client.force_login(people.developer)
    data = {**VALID_REQUEST, "environment": "test", "env_vars": "LOG_LEVEL=info", "submit": "1"}
    response = client.post("/projects/orders/tickets/new/", data)
    ticket = OnboardingTicket.objects.get()
    assert response.status_code == 302
    assert ticket.status == TicketStatus.SUBMITTED
    assert ticket.request["env_vars"] == [["LOG_LEVEL", "info"]]
    page = client.get(f"/projects/orders/tickets/{ticket.pk}/").content.decode()
    assert 'id="guardrails"' in page
    assert "approve-ticket" not in page  # a developer sees no approve button


# --- who may change a filed ticket ----------------------------------------------------------


@pytest.fixture
def second_developer(people):
    from projects import services as project_services
    from projects.choices import Role
    from tests.fixtures.people import make_user

    other = make_user("dave-dev")
    project_services.member_set(actor=people.ops, project=people.project, user=other, role=Role.DEVELOPER)
    return other


def test_another_developer_cannot_edit_submit_or_withdraw_a_ticket(people, second_developer):
    draft = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=VALID_REQUEST
    )
    with pytest.raises(PermissionDenied, match="requester"):
        services.ticket_update(
            actor=second_developer, ticket_id=draft.pk, request={**VALID_REQUEST, "replicas": 3}
        )
    with pytest.raises(PermissionDenied, match="requester"):
        services.ticket_submit(actor=second_developer, ticket_id=draft.pk)
    services.ticket_submit(actor=people.developer, ticket_id=draft.pk)
    with pytest.raises(PermissionDenied, match="requester"):
        services.ticket_withdraw(actor=second_developer, ticket_id=draft.pk)
    draft.refresh_from_db()
    assert draft.status == TicketStatus.SUBMITTED
    assert draft.request["replicas"] == VALID_REQUEST["replicas"]
    # The project's owner and ops may still act on it.
    services.ticket_withdraw(actor=people.owner, ticket_id=draft.pk)
    services.ticket_update(actor=people.owner, ticket_id=draft.pk, request={**VALID_REQUEST, "replicas": 3})
    services.ticket_submit(actor=people.ops, ticket_id=draft.pk)
    draft.refresh_from_db()
    assert draft.status == TicketStatus.SUBMITTED
    assert draft.request["replicas"] == 3


def test_api_another_developer_gets_403_on_someone_elses_ticket(client, people, second_developer):
    ticket = _file(people)
    url = f"/api/projects/orders/tickets/{ticket.pk}/"
    client.force_login(second_developer)
    assert client.get(url).status_code == 200
    assert client.post(url + "withdraw/").status_code == 403
    patched = client.patch(
        url, {"request": {**VALID_REQUEST, "replicas": 3}}, content_type="application/json"
    )
    assert patched.status_code == 403
    assert "requester" in patched.json()["detail"]
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SUBMITTED
    client.force_login(people.developer)
    assert client.post(url + "withdraw/").status_code == 200


def test_page_another_developer_gets_403_on_someone_elses_ticket(client, people, second_developer):
    draft = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=VALID_REQUEST
    )
    client.force_login(second_developer)
    edit = f"/projects/orders/tickets/{draft.pk}/edit/"
    assert client.get(edit).status_code == 403
    assert client.post(edit, {**VALID_REQUEST, "environment": "test", "replicas": 3}).status_code == 403
    assert client.post(f"/projects/orders/tickets/{draft.pk}/submit/").status_code == 403
    draft.refresh_from_db()
    assert draft.status == TicketStatus.DRAFT
    assert draft.request["replicas"] == VALID_REQUEST["replicas"]
    client.force_login(people.developer)
    assert client.get(edit).status_code == 200
