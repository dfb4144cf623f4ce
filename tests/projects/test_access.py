import pytest
from django.urls import reverse

from projects.access import Action, can

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url", ["/projects/orders/", "/projects/orders/?tab=members", "/projects/orders/?tab=audit"]
)
def test_non_member_gets_404_on_project_pages(client, people, url):
    client.force_login(people.outsider)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("url", ["/api/projects/orders/", "/api/projects/orders/members/"])
def test_non_member_gets_404_on_project_endpoints(client, people, url):
    client.force_login(people.outsider)
    assert client.get(url).status_code == 404
    client.force_login(people.viewer)
    assert client.get(url).status_code == 200


def test_project_list_shows_only_visible_projects(client, people):
    client.force_login(people.outsider)
    assert "orders" not in client.get(reverse("project-list") + "?scope=all").content.decode()
    client.force_login(people.viewer)
    assert "orders" in client.get(reverse("project-list")).content.decode()


def test_project_list_search_and_scope(client, people):
    client.force_login(people.ops)
    assert "orders" not in client.get(reverse("project-list")).content.decode()  # ops is not a member
    assert "orders" in client.get(reverse("project-list") + "?scope=all&q=ord").content.decode()
    assert "orders" not in client.get(reverse("project-list") + "?scope=all&q=zzz").content.decode()


def test_role_matrix(people):
    project = people.project
    assert can(people.developer, Action.FILE_TICKET, project)
    assert not can(people.developer, Action.APPROVE_TICKET, project)
    assert not can(people.viewer, Action.FILE_TICKET, project)
    assert can(people.tester, Action.CONFIRM_RELEASE, project)
    assert can(people.qa, Action.CONFIRM_RELEASE, project)
    assert not can(people.qa, Action.EDIT_CONFIG, project)
    assert can(people.ops, Action.EDIT_CONFIG, project)
    assert not can(people.developer, Action.TERMINAL_PROD, project)
    assert not can(people.outsider, Action.VIEW, project)


def test_inactive_user_has_no_rights(people):
    people.developer.is_active = False
    people.developer.save()
    assert not can(people.developer, Action.VIEW, people.project)


def test_add_member_form_proposes_developer_not_owner(client, people):
    client.force_login(people.owner)
    page = client.get("/projects/orders/?tab=members")
    assert page.status_code == 200
    assert '<option value="developer" selected>' in page.content.decode()
