"""A project's Apollo settings: owners and ops set them (page and API), the token is stored encrypted and
never shown back or audited, only ops let owners edit production."""

import pytest
from django.db import connection

from configs.models import ApolloSettings
from observability.models import AuditEvent
from tests.helpers.api import api_as

pytestmark = pytest.mark.django_db

API = "/api/projects/orders/apollo/settings/"
PAGE = "/projects/orders/apollo/settings/"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
OTHER_TOKEN = "fedcba9876543210fedcba9876543210fedcba98"


def _stored_token_column(row: ApolloSettings) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM configs_apollosettings WHERE id = %s", [row.pk])
        return cursor.fetchone()[0]


def test_an_owner_sets_the_settings_and_the_token_is_encrypted_and_never_shown(people):
    response = api_as(people.owner).patch(
        API,
        {"app_id": "orders-service", "namespaces": ["application", "redis.yml"], "token": TOKEN},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "project": "orders",
        "configured": True,
        "app_id": "orders-service",
        "cluster": "default",
        "namespaces": ["application", "redis.yml"],
        "test_env": "FAT",
        "prod_env": "PRO",
        "has_token": True,
        "owner_may_edit_prod": False,
        "apollo_enabled": body["apollo_enabled"],
    }
    assert TOKEN not in response.content.decode()
    row = ApolloSettings.objects.get(project=people.project)
    assert row.token == TOKEN
    assert TOKEN not in _stored_token_column(row) and _stored_token_column(row)
    event = AuditEvent.objects.get(verb="apollo.settings.create")
    assert event.actor == people.owner and event.project == people.project
    assert event.changes["app_id"] == "orders-service" and event.changes["token"] == "[redacted]"
    assert TOKEN not in str(event.changes)
    # Members read the settings (never the token); the page says whether one is set.
    viewer = api_as(people.viewer).get(API)
    assert (
        viewer.status_code == 200
        and viewer.json()["has_token"] is True
        and TOKEN not in viewer.content.decode()
    )


def test_a_blank_token_keeps_the_stored_one_and_a_new_one_replaces_it(people):
    owner = api_as(people.owner)
    assert owner.patch(API, {"app_id": "orders-service", "token": TOKEN}, format="json").status_code == 200

    kept = owner.patch(API, {"cluster": "blue", "token": ""}, format="json")
    assert kept.status_code == 200 and kept.json()["cluster"] == "blue"
    assert ApolloSettings.objects.get().token == TOKEN
    update = AuditEvent.objects.filter(verb="apollo.settings.update").latest("id")
    assert update.changes == {"cluster": ["default", "blue"]}

    assert owner.patch(API, {"token": OTHER_TOKEN}, format="json").status_code == 200
    assert ApolloSettings.objects.get().token == OTHER_TOKEN
    replaced = AuditEvent.objects.filter(verb="apollo.settings.update").latest("id")
    assert replaced.changes == {"token": "[redacted]"} and OTHER_TOKEN not in str(replaced.changes)
    # Nothing changed: nothing audited.
    before = AuditEvent.objects.count()
    assert owner.patch(API, {"cluster": "blue"}, format="json").status_code == 200
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token": TOKEN}, "app_id"),
        ({"app_id": "orders service", "token": TOKEN}, "app_id"),
        ({"app_id": "orders"}, "token"),
        ({"app_id": "orders", "token": "has spaces"}, "token"),
        ({"app_id": "orders", "token": TOKEN, "namespaces": []}, "namespaces"),
        ({"app_id": "orders", "token": TOKEN, "namespaces": ["ok", "not ok"]}, "namespaces"),
        ({"app_id": "orders", "token": TOKEN, "test_env": "F A T"}, "test_env"),
        ({"app_id": "orders", "token": TOKEN, "cluster": "a/b"}, "cluster"),
    ],
)
def test_bad_settings_are_refused_by_field_and_nothing_is_stored(people, body, field):
    response = api_as(people.ops).patch(API, body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not ApolloSettings.objects.exists()
    assert TOKEN not in response.content.decode()


def test_environment_names_are_upper_cased(people):
    response = api_as(people.ops).patch(
        API, {"app_id": "orders", "token": TOKEN, "test_env": "uat", "prod_env": "pro"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["test_env"], response.json()["prod_env"]) == ("UAT", "PRO")


def test_only_ops_let_owners_edit_production_and_owners_may_switch_it_off(people):
    owner, ops = api_as(people.owner), api_as(people.ops)
    assert owner.patch(API, {"app_id": "orders", "token": TOKEN}, format="json").status_code == 200

    refused = owner.patch(API, {"owner_may_edit_prod": True}, format="json")
    assert refused.status_code == 403 and "Only ops" in refused.json()["detail"]
    assert ApolloSettings.objects.get().owner_may_edit_prod is False

    assert ops.patch(API, {"owner_may_edit_prod": True}, format="json").json()["owner_may_edit_prod"] is True
    event = AuditEvent.objects.filter(verb="apollo.settings.update").latest("id")
    assert event.actor == people.ops and event.changes == {"owner_may_edit_prod": [False, True]}

    assert owner.patch(API, {"owner_may_edit_prod": False}, format="json").status_code == 200
    assert ApolloSettings.objects.get().owner_may_edit_prod is False


def test_developers_may_not_change_the_settings_and_outsiders_do_not_see_them(people):
    assert (
        api_as(people.developer).patch(API, {"app_id": "x", "token": TOKEN}, format="json").status_code == 403
    )
    assert api_as(people.outsider).get(API).status_code == 404
    assert api_as(people.outsider).patch(API, {"app_id": "x"}, format="json").status_code == 404
    assert not ApolloSettings.objects.exists()


def test_a_project_without_settings_answers_the_defaults(people):
    body = api_as(people.viewer).get(API).json()
    assert body["configured"] is False and body["has_token"] is False
    assert (body["cluster"], body["namespaces"], body["test_env"], body["prod_env"]) == (
        "default",
        ["application"],
        "FAT",
        "PRO",
    )


def test_the_settings_page_saves_never_echoes_the_token_and_refuses_owners_the_prod_switch(client, people):
    client.force_login(people.owner)
    form = {
        "app_id": "orders-service",
        "cluster": "default",
        "namespaces": "application\nredis.yml",
        "test_env": "FAT",
        "prod_env": "PRO",
        "token": TOKEN,
    }
    # An error brings the form back without the token it was given.
    invalid = client.post(PAGE, {**form, "app_id": "bad id"})
    assert invalid.status_code == 400 and TOKEN not in invalid.content.decode()
    assert not ApolloSettings.objects.exists()

    saved = client.post(PAGE, form)
    assert saved.status_code == 302 and saved["Location"] == "/projects/orders/apollo/"
    row = ApolloSettings.objects.get()
    assert row.namespaces == ["application", "redis.yml"] and row.token == TOKEN
    page = client.get(PAGE)
    assert TOKEN not in page.content.decode() and "A token is set." in page.content.decode()
    # The owner's form shows the production switch off and disabled: posting it on changes nothing.
    assert 'name="owner_may_edit_prod"' in page.content.decode() and "disabled" in page.content.decode()
    client.post(PAGE, {**form, "token": "", "owner_may_edit_prod": "on"})
    assert ApolloSettings.objects.get().owner_may_edit_prod is False
    overview = client.get("/projects/orders/apollo/")
    assert overview.status_code == 200 and TOKEN not in overview.content.decode()
    assert "orders-service" in overview.content.decode()

    client.force_login(people.ops)
    assert client.post(PAGE, {**form, "token": "", "owner_may_edit_prod": "on"}).status_code == 302
    assert ApolloSettings.objects.get().owner_may_edit_prod is True
    client.force_login(people.developer)
    assert client.get(PAGE).status_code == 403
    client.force_login(people.outsider)
    assert client.get(PAGE).status_code == 404
    assert client.get("/projects/orders/apollo/").status_code == 404


def test_the_overview_says_what_to_set(client, people, settings):
    settings.APOLLO_PORTAL_URL = ""
    client.force_login(people.owner)
    page = client.get("/projects/orders/apollo/").content.decode()
    assert (
        "APOLLO_PORTAL_URL" in page
        and "no Apollo settings yet" in page
        and "/projects/orders/apollo/settings/" in page
    )
    client.force_login(people.viewer)
    page = client.get("/projects/orders/apollo/").content.decode()
    assert "owner or ops set them." in page and "apollo-setup-link" not in page
