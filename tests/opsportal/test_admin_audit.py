"""The admin path: whatever the admin still writes (users, groups, tokens) is audited, and deleting a
project or a user leaves the audit trail readable."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from rest_framework.authtoken.models import Token

from observability.models import AuditEvent
from projects.choices import OPS_GROUP
from tests.fixtures.people import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("sue-super", password=PASSWORD)


def test_deleting_a_project_or_user_keeps_their_names_on_the_audit_list(client, people):
    project_event = AuditEvent.objects.filter(project=people.project).first()
    assert project_event is not None
    assert project_event.project_name == "orders"
    owner_events = AuditEvent.objects.filter(actor=people.ops).count()
    assert owner_events > 0

    people.project.delete()
    people.ops.delete()

    project_event.refresh_from_db()
    assert project_event.project is None
    assert project_event.project_name == "orders"
    assert AuditEvent.objects.filter(actor_name="olivia-ops", actor=None).count() == owner_events

    auditor = User.objects.create_user("ann-ops", password=PASSWORD)
    auditor.groups.add(Group.objects.get_or_create(name=OPS_GROUP)[0])
    client.force_login(auditor)
    rows = client.get("/api/audit-events/?project=orders").json()["results"]
    assert rows and all(row["project"] == "orders" for row in rows)
    assert {row["actor_name"] for row in rows} == {"olivia-ops"}
    page = client.get("/audit/?project=orders").content.decode()
    assert "<td>orders</td>" in page and "olivia-ops" in page


def test_an_event_outside_any_project_has_a_null_project(client, people):
    client.force_login(people.ops)
    rows = client.get("/api/audit-events/?verb=member.set").json()["results"]
    assert rows
    client.post("/api/token/", {"username": people.ops.username, "password": PASSWORD})
    token_rows = client.get("/api/audit-events/?verb=token.create").json()["results"]
    assert [row["project"] for row in token_rows] == [None]


def test_the_migration_backfills_project_names_on_existing_rows(people):
    from importlib import import_module

    migration = import_module("observability.migrations.0002_auditevent_project_name")
    state = MigrationLoader(connection).project_state(("observability", "0002_auditevent_project_name"))
    historical = state.apps.get_model("observability", "AuditEvent")
    historical.objects.filter(project_id=people.project.pk).update(project_name="")
    assert historical.objects.filter(project_name="orders").count() == 0

    migration.backfill_project_names(state.apps, None)

    rows = AuditEvent.objects.filter(project=people.project)
    assert rows.exists() and set(rows.values_list("project_name", flat=True)) == {"orders"}
    assert set(AuditEvent.objects.filter(project=None).values_list("project_name", flat=True)) <= {""}


def test_granting_staff_superuser_groups_and_permissions_in_the_admin_is_audited(client, people, superuser):
    client.force_login(superuser)
    target = people.developer
    ops_group = Group.objects.get(name=OPS_GROUP)
    permission = Permission.objects.get(codename="view_project")
    response = client.post(
        f"/admin/auth/user/{target.pk}/change/",
        {
            "username": target.username,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [ops_group.pk],
            "user_permissions": [permission.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert target.is_superuser and target.groups.filter(name=OPS_GROUP).exists()
    event = AuditEvent.objects.get(verb="user.change")
    assert event.actor == superuser
    assert event.target_id == str(target.pk)
    assert event.remote_addr == "127.0.0.1"
    assert event.changes == {
        "is_staff": [False, True],
        "is_superuser": [False, True],
        "groups": [[], [OPS_GROUP]],
        "user_permissions": [[], ["view_project"]],
    }


def test_adding_deleting_users_and_changing_passwords_in_the_admin_is_audited_without_the_password(
    client, people, superuser
):
    client.force_login(superuser)
    new_password = "a-brand-new-Passw0rd-42"
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "nina-new",
            "password1": new_password,
            "password2": new_password,
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    nina = User.objects.get(username="nina-new")
    created = AuditEvent.objects.get(verb="user.create")
    assert created.changes["username"] == [None, "nina-new"]

    response = client.post(
        f"/admin/auth/user/{nina.pk}/password/",
        {"password1": new_password + "x", "password2": new_password + "x", "usable_password": "true"},
    )
    assert response.status_code == 302
    changed = AuditEvent.objects.get(verb="user.change", target_id=str(nina.pk))
    assert changed.changes == {"changed_fields": ["password"]}

    client.post(
        "/admin/auth/user/", {"action": "delete_selected", "_selected_action": [nina.pk], "post": "yes"}
    )
    assert not User.objects.filter(username="nina-new").exists()
    deleted = AuditEvent.objects.get(verb="user.delete")
    assert deleted.target_repr == "nina-new" and deleted.actor == superuser
    for event in AuditEvent.objects.filter(verb__startswith="user."):
        stored = " ".join(str(value) for value in vars(event).values())
        assert new_password not in stored


def test_group_permission_changes_in_the_admin_are_audited(client, superuser):
    client.force_login(superuser)
    group = Group.objects.create(name="auditors")
    permission = Permission.objects.get(codename="view_auditevent")
    response = client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "auditors", "permissions": [permission.pk]}
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(verb="group.change")
    assert event.changes == {"permissions": [[], ["view_auditevent"]]}
    client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(verb="group.delete", target_repr="auditors").exists()


def test_token_admin_cannot_issue_never_shows_keys_and_audits_revocation(client, people, superuser):
    token = Token.objects.create(user=people.developer)
    client.force_login(superuser)
    listing = client.get("/admin/authtoken/tokenproxy/")
    assert listing.status_code == 200
    assert token.key not in listing.content.decode()
    assert client.get("/admin/authtoken/tokenproxy/add/").status_code == 403
    response = client.post("/admin/authtoken/tokenproxy/add/", {"user": people.viewer.pk})
    assert response.status_code == 403
    assert not Token.objects.filter(user=people.viewer).exists()
    detail = client.get(f"/admin/authtoken/tokenproxy/{people.developer.pk}/change/")
    assert detail.status_code == 403
    confirm = client.get(f"/admin/authtoken/tokenproxy/{people.developer.pk}/delete/")
    assert confirm.status_code == 200
    assert token.key not in confirm.content.decode()

    response = client.post(
        f"/admin/authtoken/tokenproxy/{people.developer.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert token.key not in response.content.decode()
    assert token.key not in " ".join(LogEntry.objects.values_list("object_repr", flat=True))
    assert not Token.objects.filter(user=people.developer).exists()
    event = AuditEvent.objects.get(verb="token.revoke")
    assert event.actor == superuser and event.target_repr == people.developer.username
    assert token.key not in " ".join(str(value) for value in vars(event).values())
