"""Production terminal grants: only ops grant them, they expire by the clock, and every grant, revocation
and expiry is in the audit trail exactly once."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from observability.models import AuditEvent
from projects import services
from projects.access import Action, can
from projects.choices import GrantEnd, Role
from projects.models import ProdTerminalGrant
from projects.tasks import expire_terminal_grants

pytestmark = pytest.mark.django_db


def _verbs(grant: ProdTerminalGrant) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_type="projects.prodterminalgrant", target_id=str(grant.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )


def test_owner_cannot_grant_prod_terminal_through_the_api(client, people):
    client.force_login(people.owner)
    for username in (people.owner.username, people.developer.username):
        answer = client.post(
            "/api/projects/orders/members/",
            {"username": username, "role": Role.DEVELOPER, "prod_terminal": True},
            content_type="application/json",
        )
        assert answer.status_code == 403
        assert answer.json() == {
            "detail": "Only ops may grant or revoke production terminal access; ask ops on the terminal "
            "grants page.",
            "errors": {},
        }
    assert not ProdTerminalGrant.objects.exists()
    assert not can(people.developer, Action.TERMINAL_PROD, people.project)
    # The role change in the refused request was not written either.
    assert people.project.members.get(user=people.owner).role == Role.OWNER
    # Other membership changes stay the owner's.
    answer = client.post(
        "/api/projects/orders/members/",
        {"username": people.viewer.username, "role": Role.TESTER},
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert answer.json()["role"] == Role.TESTER and answer.json()["prod_terminal"] is False


def test_owner_cannot_grant_prod_terminal_on_the_page(client, people):
    client.force_login(people.owner)
    page = client.post(
        "/projects/orders/members/",
        {"username": people.developer.username, "role": Role.DEVELOPER, "prod_terminal": "on"},
    )
    assert page.status_code == 403
    body = page.content.decode()
    assert 'id="member-form-errors"' in body and "Only ops may grant or revoke production terminal" in body
    assert not ProdTerminalGrant.objects.exists()
    # The checkbox is not offered to owners at all.
    assert 'name="prod_terminal"' not in client.get("/projects/orders/?tab=members").content.decode()


def test_ops_grants_for_the_default_duration_and_it_is_audited(client, people, settings):
    settings.PROD_TERMINAL_GRANT_HOURS = 8
    client.force_login(people.ops)
    before = timezone.now()
    answer = client.post(
        "/api/projects/orders/members/",
        {"username": people.developer.username, "role": Role.DEVELOPER, "prod_terminal": True},
        content_type="application/json",
    )
    assert answer.status_code == 200 and answer.json()["prod_terminal"] is True
    grant = ProdTerminalGrant.objects.get()
    assert grant.granted_by == people.ops and grant.user == people.developer
    assert timedelta(hours=8) <= grant.expires_at - before <= timedelta(hours=8, seconds=30)
    assert can(people.developer, Action.TERMINAL_PROD, people.project)
    assert _verbs(grant) == ["prod_terminal.granted"]
    event = AuditEvent.objects.get(verb="prod_terminal.granted")
    assert event.actor == people.ops and event.project == people.project
    assert event.changes["user"] == people.developer.username and event.changes["hours"] == 8

    # Ops grant on the page too, for a chosen number of hours.
    page = client.post(
        "/terminal-grants/", {"project": "orders", "username": people.tester.username, "hours": "2"}
    )
    assert page.status_code == 302
    tester_grant = ProdTerminalGrant.objects.get(user=people.tester)
    assert (
        timedelta(hours=2) - timedelta(seconds=30)
        <= tester_grant.expires_at - before
        <= timedelta(hours=2, seconds=30)
    )


def test_grant_duration_is_bounded_and_only_for_members(client, people, settings):
    client.force_login(people.ops)
    too_long = settings.PROD_TERMINAL_GRANT_MAX_HOURS + 1
    answer = client.post(
        "/api/terminal-grants/",
        {"project": "orders", "username": people.developer.username, "hours": too_long},
        content_type="application/json",
    )
    assert answer.status_code == 400 and "hours" in answer.json()["errors"]
    answer = client.post(
        "/api/terminal-grants/",
        {"project": "orders", "username": people.outsider.username},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"username": ["otto-outsider is not a member of orders."]}
    page = client.post(
        "/terminal-grants/", {"project": "orders", "username": people.outsider.username, "hours": "1"}
    )
    assert page.status_code == 400 and "is not a member of orders" in page.content.decode()
    assert not ProdTerminalGrant.objects.exists()


def test_expired_grant_gives_no_access_before_the_sweep_and_expiry_is_audited_once(people):
    grant = services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer, hours=1
    )
    assert can(people.developer, Action.TERMINAL_PROD, people.project)
    with time_machine.travel(grant.expires_at + timedelta(seconds=1)):
        # The beat task has not run: the clock alone refuses.
        assert not can(people.developer, Action.TERMINAL_PROD, people.project)
        assert expire_terminal_grants.apply().get() == 1
        assert expire_terminal_grants.apply().get() == 0
        assert services.terminal_grants_expire() == 0
    grant.refresh_from_db()
    assert grant.end_reason == GrantEnd.EXPIRED and grant.ended_at == grant.expires_at
    assert _verbs(grant) == ["prod_terminal.granted", "prod_terminal.expired"]
    expired = AuditEvent.objects.get(verb="prod_terminal.expired")
    assert expired.actor is None and expired.actor_name == "system"
    # A late revocation of a lapsed grant changes nothing and records nothing more.
    services.terminal_grant_revoke(actor=people.ops, grant=grant)
    assert _verbs(grant) == ["prod_terminal.granted", "prod_terminal.expired"]


def test_revoking_a_lapsed_but_unswept_grant_records_its_expiry_not_a_revocation(people):
    grant = services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer, hours=1
    )
    with time_machine.travel(grant.expires_at + timedelta(minutes=5)):
        services.terminal_grant_revoke(actor=people.ops, grant=grant)
        assert services.terminal_grants_expire() == 0
    assert _verbs(grant) == ["prod_terminal.granted", "prod_terminal.expired"]


def test_ops_revokes_through_the_api_and_it_is_audited(client, people):
    grant = services.terminal_grant_create(actor=people.ops, project=people.project, user=people.developer)
    client.force_login(people.ops)
    answer = client.post(f"/api/terminal-grants/{grant.pk}/revoke/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is False and body["end_reason"] == "revoked" and body["ended_by"] == "olivia-ops"
    assert body["remaining_seconds"] == 0
    assert not can(people.developer, Action.TERMINAL_PROD, people.project)
    # Again: nothing changes, nothing more is recorded.
    assert client.post(f"/api/terminal-grants/{grant.pk}/revoke/").status_code == 200
    assert _verbs(grant) == ["prod_terminal.granted", "prod_terminal.revoked"]
    assert AuditEvent.objects.get(verb="prod_terminal.revoked").actor == people.ops
    assert services.terminal_grants_expire(now=grant.expires_at + timedelta(hours=1)) == 0


def test_ops_revokes_on_the_page_and_regrant_replaces(client, people):
    first = services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer, hours=1
    )
    second = services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer, hours=4
    )
    first.refresh_from_db()
    assert first.end_reason == GrantEnd.REPLACED
    assert (
        AuditEvent.objects.get(verb="prod_terminal.granted", target_id=str(second.pk)).changes["replaces"]
        == first.pk
    )
    client.force_login(people.ops)
    assert client.post(f"/terminal-grants/{second.pk}/revoke/").status_code == 302
    second.refresh_from_db()
    assert second.end_reason == GrantEnd.REVOKED and second.ended_by == people.ops
    assert not can(people.developer, Action.TERMINAL_PROD, people.project)


def test_removing_a_member_revokes_their_grant(people):
    grant = services.terminal_grant_create(actor=people.ops, project=people.project, user=people.developer)
    services.member_remove(actor=people.owner, project=people.project, user=people.developer)
    grant.refresh_from_db()
    assert grant.end_reason == GrantEnd.REVOKED
    services.member_set(
        actor=people.owner, project=people.project, user=people.developer, role=Role.DEVELOPER
    )
    assert not can(people.developer, Action.TERMINAL_PROD, people.project)


def test_ops_page_and_api_list_active_and_ended_grants(client, people):
    active = services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer, hours=3
    )
    revoked = services.terminal_grant_create(actor=people.ops, project=people.project, user=people.tester)
    services.terminal_grant_revoke(actor=people.ops, grant=revoked)
    lapsed = services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.viewer, hours=1
    )
    ProdTerminalGrant.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client.force_login(people.ops)
    body = client.get("/api/terminal-grants/").json()
    assert [g["username"] for g in body["active"]] == ["dora-dev"]
    row = body["active"][0]
    assert row["project"] == "orders" and row["granted_by"] == "olivia-ops" and row["active"] is True
    assert 3 * 3600 - 60 <= row["remaining_seconds"] <= 3 * 3600
    assert row["ended_at"] is None and row["ended_by"] is None
    assert {g["username"] for g in body["ended"]} == {"tess-tester", "vic-viewer"}
    assert all(g["active"] is False for g in body["ended"])
    page = client.get("/terminal-grants/").content.decode()
    assert f'data-grant="{active.pk}"' in page and f'data-grant="{revoked.pk}"' in page
    assert f'data-grant="{lapsed.pk}"' in page
    assert (
        page.index('id="active-grants"')
        < page.index(f'data-grant="{active.pk}"')
        < page.index('id="ended-grants"')
    )
    assert page.index('id="ended-grants"') < page.index(f'data-grant="{revoked.pk}"')
    chinese = client.get("/terminal-grants/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "生产终端授权" in chinese and "授权人" in chinese


@pytest.mark.parametrize("who", ["owner", "developer", "viewer", "outsider", "qa"])
def test_grant_pages_and_endpoints_are_404_for_everyone_but_ops(client, people, who):
    grant = services.terminal_grant_create(actor=people.ops, project=people.project, user=people.developer)
    client.force_login(getattr(people, who))
    assert client.get("/terminal-grants/").status_code == 404
    assert (
        client.post(
            "/terminal-grants/", {"project": "orders", "username": "dora-dev", "hours": "1"}
        ).status_code
        == 404
    )
    assert client.post(f"/terminal-grants/{grant.pk}/revoke/").status_code == 404
    assert client.get("/api/terminal-grants/").status_code == 404
    answer = client.post(
        "/api/terminal-grants/",
        {"project": "orders", "username": "dora-dev"},
        content_type="application/json",
    )
    assert answer.status_code == 404 and answer.json() == {"detail": "Not found.", "errors": {}}
    assert client.post(f"/api/terminal-grants/{grant.pk}/revoke/").status_code == 404
    grant.refresh_from_db()
    assert grant.ended_at is None
    assert ProdTerminalGrant.objects.count() == 1


def test_grant_pages_send_anonymous_users_to_sign_in(client, people):
    assert client.get("/terminal-grants/").status_code == 302
    assert client.get("/api/terminal-grants/").status_code in (401, 403)


def test_grant_endpoints_are_documented(client, people):
    client.force_login(people.ops)
    schema = client.get("/api/schema/?format=json").json()
    listing = schema["paths"]["/api/terminal-grants/"]
    assert set(listing["get"]["responses"]) >= {"200", "403", "404"}
    assert set(listing["post"]["responses"]) >= {"201", "400", "403", "404"}
    assert "requestBody" in listing["post"]
    revoke = schema["paths"]["/api/terminal-grants/{id}/revoke/"]["post"]
    assert set(revoke["responses"]) >= {"200", "403", "404"}
    grant = schema["components"]["schemas"]["TerminalGrant"]["properties"]
    assert grant["ended_at"].get("nullable") and grant["granted_by"].get("nullable")
    member = schema["components"]["schemas"]["MemberSet"]["properties"]["prod_terminal"]
    assert member.get("nullable")
