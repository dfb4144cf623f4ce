from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from observability.models import AuditEvent
from observability.services import audit_record
from projects import services as project_services
from projects.choices import Role

pytestmark = pytest.mark.django_db


def test_project_creation_is_audited_with_actor(people):
    event = AuditEvent.objects.get(verb="project.create", project=people.project)
    assert event.actor == people.ops
    assert event.changes["owner"] == people.owner.username


def test_audit_events_are_append_only(people):
    event = AuditEvent.objects.filter(project=people.project).first()
    event.verb = "tampered"
    with pytest.raises(ValidationError):
        event.save()
    with pytest.raises(ValidationError):
        event.delete()
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(pk=event.pk).update(verb="tampered")
    with pytest.raises(ValidationError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).verb != "tampered"


@pytest.mark.django_db(transaction=True)
def test_audit_needs_the_actions_transaction(people):
    with pytest.raises(RuntimeError):
        audit_record(actor=people.ops, verb="x", target=people.project)


def test_secrets_never_reach_the_audit_record(people):
    with transaction.atomic():
        event = audit_record(
            actor=people.ops,
            verb="cluster.update",
            target=people.project,
            changes={
                "token": "s3cr3t",
                "nested": {"kubeconfig": "apiVersion: v1"},
                "name": "x",
                "env_vars": [[["DB_PASSWORD", "hunter2"], ["LOG_LEVEL", "info"]], [["API_TOKEN", "t0k"]]],
            },
        )
    assert "s3cr3t" not in str(event.changes)
    assert "hunter2" not in str(event.changes) and "t0k" not in str(event.changes)
    assert ["LOG_LEVEL", "info"] in event.changes["env_vars"][0]
    assert "apiVersion" not in str(event.changes)
    assert event.changes["name"] == "x"


def test_member_change_records_the_diff(people):
    project_services.member_set(
        actor=people.ops, project=people.project, user=people.viewer, role=Role.TESTER
    )
    event = AuditEvent.objects.filter(verb="member.set").first()
    assert event.changes["role"] == [Role.VIEWER, Role.TESTER]
    # Setting the same role again records nothing.
    count = AuditEvent.objects.count()
    project_services.member_set(
        actor=people.ops, project=people.project, user=people.viewer, role=Role.TESTER
    )
    assert AuditEvent.objects.count() == count


def test_audit_page_filters(client, people):
    client.force_login(people.ops)
    base = reverse("audit-list")
    assert "member.set" in client.get(base + "?verb=member.set").content.decode()
    assert "project.create" not in client.get(base + "?verb=member.set").content.decode()
    assert "member.set" in client.get(base + f"?actor={people.ops.username}").content.decode()
    assert "No events." in client.get(base + "?actor=nobody").content.decode()
    future = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No events." in client.get(base + f"?since={future}").content.decode()
    assert "member.set" in client.get(base + "?project=orders").content.decode()


def test_audit_page_hides_other_projects_events(client, people):
    client.force_login(people.outsider)
    assert "orders" not in client.get(reverse("audit-list")).content.decode()
    client.force_login(people.viewer)
    assert "project.create" in client.get(reverse("audit-list")).content.decode()


def test_audit_api_is_read_only(client, people):
    client.force_login(people.ops)
    listing = client.get("/api/audit-events/?verb=project.create").json()
    assert listing["count"] == 1
    assert listing["results"][0]["project"] == "orders"
    assert client.post("/api/audit-events/", {}).status_code == 405
    assert client.delete("/api/audit-events/").status_code == 405
