"""`make run`: the demo projects' Apollo settings point at the Apollo stand-in, so their config pages work
from the first start (the stand-in of sandbox.services, in this process)."""

import pytest
from django.contrib.auth import get_user_model

from configs.models import ApolloSettings
from observability.models import AuditEvent
from sandbox.seed import DEMO_PROJECTS, seed_apollo_settings, seed_demo
from sandbox.services import APOLLO_DEMO_ENVS, ApolloService

pytestmark = pytest.mark.django_db


@pytest.fixture
def apollo_service(tmp_path):
    service = ApolloService(tmp_path / "apollo")
    service.start()
    yield service
    service.stop()


def test_the_demo_projects_edit_their_config_on_the_stand_in(client, settings, apollo_service):
    settings.APOLLO_PORTAL_URL = apollo_service.url
    seed_demo()

    assert sorted(seed_apollo_settings(token=apollo_service.token, envs=APOLLO_DEMO_ENVS)) == sorted(
        DEMO_PROJECTS
    )
    row = ApolloSettings.objects.get(project__name="go-hello")
    assert (row.app_id, row.namespaces, row.test_env, row.prod_env) == (
        "go-hello",
        ["application"],
        "FAT",
        "PRO",
    )
    assert row.token == apollo_service.token
    assert AuditEvent.objects.filter(verb="apollo.settings.create").count() == len(DEMO_PROJECTS)
    # Settings someone saved stay as they are.
    row.cluster = "blue"
    row.save()
    assert seed_apollo_settings(token="other", envs=APOLLO_DEMO_ENVS) == []
    assert ApolloSettings.objects.get(project__name="go-hello").cluster == "blue"

    client.force_login(get_user_model().objects.get(username="dev"))
    page = "/projects/java-hello/apollo/test/application/"
    assert (
        client.post(page + "items/new/", {"key": "greeting", "value": "hello", "comment": ""}).status_code
        == 302
    )
    assert client.post(page + "release/", {"title": "first", "comment": ""}).status_code == 302
    assert "greeting" in client.get(page).content.decode()
    latest = apollo_service.standin.release_history("FAT", "java-hello", "default", "application")[-1]
    assert latest["configurations"] == {"greeting": "hello"} and latest["dataChangeCreatedBy"] == "dev"
