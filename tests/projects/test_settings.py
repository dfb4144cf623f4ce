"""A project's release settings: an audited page and API for owners and ops; the admin only shows."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from django.utils import translation

from clusters.models import Cluster
from observability.models import AuditEvent
from projects import services
from projects.models import Project, ProjectMember, UserProfile

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english_afterwards(settings):
    yield
    # A page served in Chinese leaves the language active in this thread; later tests expect English.
    translation.activate(settings.LANGUAGE_CODE)


PAGE = "/projects/orders/settings/"
API = "/api/projects/orders/settings/"
# Post-release verification's settings, as a new project has them.
VERIFICATION_DEFAULTS = {
    "verification_window_seconds": 300,
    "verification_min_requests": 50,
    "verification_error_points": 2.0,
    "verification_error_factor": 2.0,
    "verification_latency_ms": 100,
    "verification_latency_factor": 1.5,
}


def _settings(project: Project) -> tuple[bool, bool]:
    project.refresh_from_db()
    return project.require_tester_confirmation, project.auto_rollback


def test_owner_turns_auto_rollback_on_through_the_page(client, people):
    assert _settings(people.project) == (True, False)
    client.force_login(people.owner)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert 'id="project-settings-form"' in page.content.decode()
    response = client.post(PAGE, {"require_tester_confirmation": "on", "auto_rollback": "on"})
    assert response.status_code == 302
    assert _settings(people.project) == (True, True)
    event = AuditEvent.objects.get(verb="project.settings")
    assert event.actor == people.owner
    assert event.project == people.project
    assert event.target_id == str(people.project.pk)
    assert event.changes == {"auto_rollback": [False, True]}
    # The same form again changes nothing and records nothing.
    client.post(PAGE, {"require_tester_confirmation": "on", "auto_rollback": "on"})
    assert AuditEvent.objects.filter(verb="project.settings").count() == 1


def test_ops_change_both_settings_through_the_api(client, people):
    client.force_login(people.ops)
    assert client.get(API).json() == {
        "require_tester_confirmation": True,
        "auto_rollback": False,
        "message_language": "",
        **VERIFICATION_DEFAULTS,
    }
    response = client.patch(
        API, {"auto_rollback": True, "require_tester_confirmation": False}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {
        "require_tester_confirmation": False,
        "auto_rollback": True,
        "message_language": "",
        **VERIFICATION_DEFAULTS,
    }
    assert _settings(people.project) == (False, True)
    event = AuditEvent.objects.get(verb="project.settings")
    assert event.actor == people.ops
    assert event.changes == {"auto_rollback": [False, True], "require_tester_confirmation": [True, False]}
    # A partial change leaves the other setting alone.
    response = client.patch(API, {"auto_rollback": False}, content_type="application/json")
    assert response.json() == {
        "require_tester_confirmation": False,
        "auto_rollback": False,
        "message_language": "",
        **VERIFICATION_DEFAULTS,
    }
    latest = AuditEvent.objects.filter(verb="project.settings").latest("id")
    assert latest.changes == {"auto_rollback": [True, False]}
    assert AuditEvent.objects.filter(verb="project.settings").count() == 2


def test_the_message_language_is_a_project_setting(client, people):
    client.force_login(people.owner)
    response = client.patch(API, {"message_language": "en"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["message_language"] == "en"
    assert AuditEvent.objects.get(verb="project.settings").changes == {"message_language": ["", "en"]}
    assert client.patch(API, {"message_language": "fr"}, content_type="application/json").status_code == 400
    page = client.post(PAGE, {"require_tester_confirmation": "on", "message_language": "zh-hans"})
    assert page.status_code == 302
    people.project.refresh_from_db()
    assert people.project.message_language == "zh-hans"
    assert 'name="message_language"' in client.get(PAGE).content.decode()


def test_bad_input_is_a_400(client, people):
    client.force_login(people.owner)
    response = client.patch(API, {"auto_rollback": "perhaps"}, content_type="application/json")
    assert response.status_code == 400
    assert "auto_rollback" in response.json()["errors"]
    assert _settings(people.project) == (True, False)


@pytest.mark.parametrize("who", ["developer", "tester", "viewer", "qa"])
def test_members_who_are_not_owner_or_ops_get_403(client, people, who):
    client.force_login(getattr(people, who))
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"auto_rollback": "on"}).status_code == 403
    assert client.get(API).status_code == 403
    assert client.patch(API, {"auto_rollback": True}, content_type="application/json").status_code == 403
    assert _settings(people.project) == (True, False)
    assert not AuditEvent.objects.filter(verb="project.settings").exists()
    assert 'id="project-settings-link"' not in client.get("/projects/orders/").content.decode()


def test_outsiders_get_404(client, people):
    client.force_login(people.outsider)
    assert client.get(PAGE).status_code == 404
    assert client.post(PAGE, {"auto_rollback": "on"}).status_code == 404
    assert client.patch(API, {"auto_rollback": True}, content_type="application/json").status_code == 404
    assert client.get("/projects/nothing/settings/").status_code == 404
    assert _settings(people.project) == (True, False)
    assert not AuditEvent.objects.filter(verb="project.settings").exists()


def test_service_checks_rights(people):
    with pytest.raises(PermissionDenied):
        services.project_update_settings(actor=people.developer, project=people.project, auto_rollback=True)
    with pytest.raises(Http404):
        services.project_update_settings(actor=people.outsider, project=people.project, auto_rollback=True)
    assert _settings(people.project) == (True, False)


def test_project_page_shows_the_settings_and_links_owners_to_them(client, people):
    client.force_login(people.owner)
    body = client.get("/projects/orders/").content.decode()
    assert 'id="project-settings-link"' in body
    assert 'href="/projects/orders/settings/"' in body
    assert 'id="setting-auto-rollback">disabled<' in body


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("sue-super", password="x-correct-horse")  # noqa: S106


@pytest.mark.parametrize(
    ("model", "url_name"),
    [(Project, "projects/project"), (UserProfile, "projects/userprofile"), (Cluster, "clusters/cluster")],
)
def test_admin_shows_but_cannot_change(client, people, superuser, model, url_name):
    UserProfile.objects.create(user=people.owner, language="en")
    Cluster.objects.create(name="east", environment="test", api_url="https://10.0.0.1", auth_type="token")
    obj = model.objects.first()
    client.force_login(superuser)
    change_url = f"/admin/{url_name}/{obj.pk}/change/"
    page = client.get(change_url)
    assert page.status_code == 200  # superusers can still read it
    body = page.content.decode()
    assert 'name="_save"' not in body
    assert client.get(f"/admin/{url_name}/").status_code == 200
    assert client.get(f"/admin/{url_name}/add/").status_code == 403
    assert client.post(f"/admin/{url_name}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    before = Project.objects.values().get(pk=people.project.pk)
    response = client.post(
        change_url,
        {
            "name": "orders",
            "owner": people.owner.pk,
            "language": "go",
            "auto_rollback": "on",
            "members-TOTAL_FORMS": "0",
            "members-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 403
    assert Project.objects.values().get(pk=people.project.pk) == before
    assert model.objects.filter(pk=obj.pk).exists()
    assert ProjectMember.objects.filter(project=people.project).count() == 4
    assert not AuditEvent.objects.filter(verb="project.settings").exists()


def test_settings_page_speaks_chinese(client, people):
    client.force_login(people.owner)
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    body = client.get(PAGE, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "发布设置" in body
    assert "发布失败时自动回滚" in body
    overview = client.get("/projects/orders/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "自动回滚" in overview and "已关闭" in overview


def test_owner_shortens_the_verification_window_through_the_page(client, people):
    client.force_login(people.owner)
    page = client.get(PAGE).content.decode()
    assert 'id="verification-settings"' in page and 'name="verification_window_seconds"' in page
    response = client.post(
        PAGE,
        {
            "require_tester_confirmation": "on",
            "verification_window_seconds": "120",
            "verification_latency_ms": 250,
        },
    )
    assert response.status_code == 302
    people.project.refresh_from_db()
    assert (people.project.verification_window_seconds, people.project.verification_latency_ms) == (120, 250)
    # Fields left out of the form keep their values.
    assert people.project.verification_min_requests == 50
    event = AuditEvent.objects.get(verb="project.settings")
    assert event.changes == {"verification_window_seconds": [300, 120], "verification_latency_ms": [100, 250]}
    assert "120 s window, at least 50 requests" in client.get("/projects/orders/").content.decode()


def test_verification_settings_through_the_api_are_validated_and_audited(client, people):
    client.force_login(people.ops)
    response = client.patch(
        API,
        {"verification_window_seconds": 30, "verification_error_factor": 0.5},
        content_type="application/json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"verification_window_seconds", "verification_error_factor"}
    people.project.refresh_from_db()
    assert people.project.verification_window_seconds == 300
    response = client.patch(
        API,
        {"verification_window_seconds": 600, "verification_error_points": 5},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["verification_window_seconds"] == 600
    assert response.json()["verification_error_points"] == 5.0
    event = AuditEvent.objects.get(verb="project.settings")
    assert event.actor == people.ops
    assert event.changes == {
        "verification_window_seconds": [300, 600],
        "verification_error_points": [2.0, 5.0],
    }


def test_the_service_refuses_a_window_below_the_minimum(people):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.project_update_settings(
            actor=people.owner, project=people.project, verification_window_seconds=5
        )
    assert "verification_window_seconds" in refused.value.message_dict
    people.project.refresh_from_db()
    assert people.project.verification_window_seconds == 300
    assert not AuditEvent.objects.filter(verb="project.settings").exists()
