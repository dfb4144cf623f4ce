"""Who may see and act on a project's alerts (members read; owners and ops acknowledge and silence;
outsiders see nothing), acknowledgements (audited, once), and the pages' and API's answers when
Alertmanager is off or refuses the input. Silences against a real Alertmanager: test_alertmanager_live.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerting.models import Alert
from observability.models import AuditEvent
from tests.alerting.payloads import make_alert
from tests.fixtures.alertmanager import use_alertmanager

pytestmark = pytest.mark.django_db


@pytest.fixture
def firing(people):
    return make_alert(people.project, annotations={"summary": "5xx ratio above 5%"})


@pytest.fixture
def off(settings):
    settings.ALERTMANAGER_URL = ""
    return settings


def _api(project="orders"):
    return f"/api/projects/{project}/alerts/"


@pytest.mark.parametrize("role", ["viewer", "developer", "tester", "owner", "ops"])
def test_members_and_ops_read_the_alerts(client, people, firing, role):
    client.force_login(getattr(people, role))
    listed = client.get(_api())
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["results"]] == [firing.pk]
    detail = client.get(f"{_api()}{firing.pk}/").json()
    assert detail["project"] == "orders" and detail["acknowledged_by"] is None
    assert [t["status"] for t in detail["transitions"]] == ["firing"]


def test_outsiders_see_neither_the_alerts_nor_the_page(client, people, firing):
    client.force_login(people.outsider)
    assert client.get(_api()).status_code == 404
    assert client.get(f"{_api()}{firing.pk}/").status_code == 404
    assert client.post(f"{_api()}{firing.pk}/acknowledge/").status_code == 404
    assert client.get("/projects/orders/alerts/").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "developer", "tester"])
def test_members_who_do_not_own_the_project_may_not_act(client, people, firing, role, off):
    client.force_login(getattr(people, role))
    assert client.post(f"{_api()}{firing.pk}/acknowledge/").status_code == 403
    body = {"minutes": 10, "comment": "x"}
    assert (
        client.post(f"{_api()}{firing.pk}/silence/", body, content_type="application/json").status_code == 403
    )
    silence = "/api/projects/orders/silences/6f1c6a51-5d0e-4b8b-9a3b-7c1f3e1d2a4b/"
    assert client.delete(silence).status_code == 403
    assert client.post(f"/projects/orders/alerts/{firing.pk}/acknowledge/").status_code == 403
    firing.refresh_from_db()
    assert firing.acknowledged_at is None


def test_the_owner_acknowledges_once_and_it_is_audited(client, people, firing):
    client.force_login(people.owner)
    response = client.post(f"{_api()}{firing.pk}/acknowledge/")
    assert response.status_code == 200, response.content
    assert response.json()["acknowledged_by"] == people.owner.username
    event = AuditEvent.objects.get(verb="alert.acknowledge")
    assert (event.actor, event.project, event.target_id) == (people.owner, people.project, str(firing.pk))
    again = client.post(f"{_api()}{firing.pk}/acknowledge/")
    assert again.status_code == 409 and set(again.json()) == {"detail", "errors"}


def test_a_resolved_alert_is_not_acknowledged(client, people, firing):
    Alert.objects.filter(pk=firing.pk).update(status="resolved", ends_at=timezone.now())
    client.force_login(people.ops)
    assert client.post(f"{_api()}{firing.pk}/acknowledge/").status_code == 409


def test_a_portal_wide_alert_is_not_reached_through_a_project(client, people, firing):
    Alert.objects.filter(pk=firing.pk).update(project=None)
    client.force_login(people.ops)
    assert client.get(f"{_api()}{firing.pk}/").status_code == 404
    assert client.get(_api()).json()["results"] == []


def test_silences_answer_502_in_the_one_shape_when_no_alertmanager_is_configured(client, people, firing, off):
    client.force_login(people.owner)
    listed = client.get("/api/projects/orders/silences/")
    assert listed.status_code == 502 and "ALERTMANAGER_URL" in listed.json()["detail"]
    body = {"minutes": 10, "comment": "maintenance"}
    made = client.post(f"{_api()}{firing.pk}/silence/", body, content_type="application/json")
    assert made.status_code == 502
    assert not AuditEvent.objects.filter(verb="alert.silence").exists()
    page = client.get("/projects/orders/alerts/")
    assert page.status_code == 200
    assert b'id="silences-error"' in page.content and b"ErrorRatioHigh" in page.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"minutes": 10, "comment": ""}, "comment"),
        ({"minutes": 0, "comment": "x"}, "minutes"),
        ({}, "minutes"),
    ],
)
def test_a_silence_needs_a_comment_and_a_sane_length(client, people, firing, body, field, off):
    client.force_login(people.owner)
    response = client.post(f"{_api()}{firing.pk}/silence/", body, content_type="application/json")
    assert response.status_code == 400 and field in response.json()["errors"]


def test_an_unknown_or_foreign_silence_is_404(client, people, alertmanager_server, settings):
    am = use_alertmanager(settings, alertmanager_server)
    from integrations.alertmanager import Matcher

    now = timezone.now()
    foreign = am.silence_create(
        matchers=[Matcher("project", "someone-else")],
        starts_at=now,
        ends_at=now + timedelta(minutes=5),
        created_by="test",
        comment="not orders'",
    )
    client.force_login(people.owner)
    assert client.delete(f"/api/projects/orders/silences/{foreign}/").status_code == 404
    assert (
        client.delete("/api/projects/orders/silences/6f1c6a51-5d0e-4b8b-9a3b-7c1f3e1d2a4b/").status_code
        == 404
    )
    assert am.silence(foreign)["status"]["state"] == "active"
    assert not AuditEvent.objects.filter(verb="alert.silence_expire").exists()


def test_the_page_shows_the_buttons_to_owners_only_and_acknowledges(client, people, firing, off):
    client.force_login(people.viewer)
    page = client.get("/projects/orders/alerts/")
    assert page.status_code == 200 and b"ErrorRatioHigh" in page.content
    assert b"silence-form" not in page.content
    client.force_login(people.owner)
    page = client.get("/projects/orders/alerts/")
    assert b"silence-form" in page.content and b"acknowledge" in page.content
    response = client.post(f"/projects/orders/alerts/{firing.pk}/acknowledge/", follow=True)
    assert response.redirect_chain[-1][0] == "/projects/orders/alerts/"
    assert b"acknowledged" in response.content
    firing.refresh_from_db()
    assert firing.acknowledged_by == people.owner


def test_the_page_reports_a_bad_silence_length_without_calling_alertmanager(client, people, firing, off):
    client.force_login(people.owner)
    response = client.post(
        f"/projects/orders/alerts/{firing.pk}/silence/", {"minutes": "soon", "comment": "x"}, follow=True
    )
    assert response.status_code == 200 and b"whole number of minutes" in response.content


def test_the_project_page_links_to_its_alerts(client, people):
    client.force_login(people.viewer)
    assert b'href="/projects/orders/alerts/"' in client.get("/projects/orders/").content


def test_the_page_silences_through_alertmanager_and_lists_and_expires_it(
    client, people, firing, alertmanager_server, settings
):
    am = use_alertmanager(settings, alertmanager_server)
    client.force_login(people.ops)
    response = client.post(
        f"/projects/orders/alerts/{firing.pk}/silence/",
        {"minutes": "15", "comment": "known issue"},
        follow=True,
    )
    assert b"silenced for 15 minutes" in response.content
    [made] = [
        s
        for s in am.silences(filters=['project="orders"'])
        if s["comment"] == "known issue" and s["status"]["state"] == "active"
    ]
    assert made["createdBy"] == people.ops.username
    assert f"/projects/orders/alerts/silences/{made['id']}/expire/".encode() in response.content
    expired = client.post(f"/projects/orders/alerts/silences/{made['id']}/expire/", follow=True)
    assert b"Silence expired." in expired.content
    assert am.silence(made["id"])["status"]["state"] == "expired"
    assert AuditEvent.objects.filter(verb="alert.silence_expire", actor=people.ops).count() == 1


@pytest.mark.parametrize("role", ["viewer", "owner", "outsider"])
def test_portal_wide_alerts_are_for_ops_only(client, people, firing, role):
    Alert.objects.filter(pk=firing.pk).update(project=None)
    client.force_login(getattr(people, role))
    assert client.get("/api/alerts/").status_code == 404
    assert client.get("/alerts/").status_code == 404


def test_ops_see_the_portal_wide_alerts(client, people, firing):
    Alert.objects.filter(pk=firing.pk).update(project=None)
    client.force_login(people.ops)
    assert [a["id"] for a in client.get("/api/alerts/?status=firing").json()["results"]] == [firing.pk]
    assert client.get("/api/alerts/?status=resolved").json()["results"] == []
    page = client.get("/alerts/")
    assert page.status_code == 200 and b"ErrorRatioHigh" in page.content
    assert b'href="/alerts/"' in page.content  # in ops' navigation
