"""The project cockpit's database part: running version and since when, what is in flight, the last
three releases, the open tickets, its cost, who may see it, and the API that serves the same data."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clusters.models import Dashboard
from deploys.models import DeploymentRecord, OnboardingTicket
from opsportal import cockpit
from tests.fixtures.clusters import VALID_REQUEST
from tests.helpers.cockpit import history, make_environment, make_release, record

pytestmark = pytest.mark.django_db


def cockpit_url(name: str = "orders") -> str:
    return reverse("project-cockpit", args=[name])


def environment_row(data: dict, environment: str) -> dict:
    return next(row for row in data["environments"] if row["environment"] == environment)


def test_running_version_since_last_three_releases_and_open_tickets(client, people):
    make_environment(people, "test")
    releases = history(people, 5)
    building = make_release(people, "v6", status="building")
    ticket = OnboardingTicket.objects.create(
        project=people.project,
        environment="prod",
        created_by=people.developer,
        request=dict(VALID_REQUEST),
        status="submitted",
    )
    OnboardingTicket.objects.create(  # an ended ticket is not open
        project=people.project, environment="test", created_by=people.developer, status="active"
    )

    data = cockpit.cockpit_get(user=people.viewer, name="orders").data
    test = environment_row(data, "test")
    assert test["onboarded"] is True
    assert test["running"]["version"] == "v5"
    since = DeploymentRecord.objects.get(release=releases[-1]).finished_at
    assert test["running"]["since"] == since
    assert [r["version"] for r in test["releases"]] == ["v6", "v5", "v4"]
    assert [r["status"] for r in test["releases"]] == ["building", "deployed", "deployed"]
    assert [(f["version"], f["status"]) for f in test["in_flight"]] == [("v6", "building")]
    # v5 runs in test and no tester confirmed it yet
    assert test["awaiting_confirmation"] == {"release_id": releases[-1].pk, "version": "v5"}
    prod = environment_row(data, "prod")
    assert prod["onboarded"] is False and prod["running"] is None and prod["releases"] == []
    assert prod["open_ticket"]["id"] == ticket.pk
    assert data["open_tickets"]["count"] == 1
    assert [t["id"] for t in data["open_tickets"]["tickets"]] == [ticket.pk]

    client.force_login(people.viewer)
    response = client.get(cockpit_url())
    assert response.status_code == 200
    html = response.content.decode()
    for release in (building, releases[-1], releases[-2]):
        assert f'href="{reverse("release-detail", args=["orders", release.pk])}"' in html
    assert f'href="{reverse("release-detail", args=["orders", releases[-3].pk])}"' not in html
    assert 'data-field="version">v5</code>' in html
    assert reverse("ticket-detail", args=["orders", ticket.pk]) in html
    assert 'id="cockpit-tickets" data-count="1"' in html
    # the onboarded environment loads its live parts and links its pages
    assert reverse("project-cockpit-live", args=["orders", "test"]) in html
    assert reverse("project-cockpit-traffic", args=["orders", "test"]) in html
    env_url = reverse("environment-page", args=["orders", "test"])
    for suffix in ("", "#monitoring", "#grafana-dashboard", "#log-form"):
        assert f'href="{env_url}{suffix}"' in html
    assert reverse("project-cockpit-live", args=["orders", "prod"]) not in html
    assert 'data-link="terminal"' not in html  # a viewer opens no terminal


def test_a_rollback_is_what_runs_and_a_rollout_in_progress_is_in_flight(people):
    make_environment(people, "test")
    first, second = history(people, 2)
    second.status = "rolled_back"
    second.save(update_fields=["status"])
    back = record(people, first, kind="rollback", finished_at=timezone.now())
    test = environment_row(cockpit.cockpit_get(user=people.developer, name="orders").data, "test")
    assert test["running"]["version"] == "v1" and test["running"]["kind"] == "rollback"
    assert test["running"]["since"] == back.finished_at

    record(people, second, kind="rollback", outcome="running")
    test = environment_row(cockpit.cockpit_get(user=people.developer, name="orders").data, "test")
    assert [(f["kind"], f["version"]) for f in test["in_flight"]] == [("rollback", "v2")]
    assert test["running"]["version"] == "v1"


def test_not_onboarded_offers_the_onboarding_ticket_to_those_who_may_file(client, people):
    client.force_login(people.developer)
    html = client.get(cockpit_url()).content.decode()
    assert html.count('data-field="not-onboarded"') == 2
    new_ticket = reverse("ticket-new", args=["orders"])
    assert f'href="{new_ticket}?environment=test"' in html
    assert f'href="{new_ticket}?environment=prod"' in html
    client.force_login(people.viewer)
    html = client.get(cockpit_url()).content.decode()
    assert html.count('data-field="not-onboarded"') == 2 and new_ticket not in html


def test_a_developer_gets_the_test_terminal_link(client, people):
    make_environment(people, "test")
    make_environment(people, "prod")
    client.force_login(people.developer)
    html = client.get(cockpit_url()).content.decode()
    assert f'href="{reverse("terminal", args=["orders", "test"])}"' in html
    assert reverse("terminal", args=["orders", "prod"]) not in html


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_page_and_the_cockpit_cost_the_same_few_queries_with_50_releases(client, people):
    make_environment(people, "test")
    make_environment(people, "prod")
    history(people, 2, environment="prod")
    client.force_login(people.developer)
    page = reverse("project-detail", args=["orders"])
    few = (_queries(client, page), _queries(client, cockpit_url()))

    history(people, 50)
    for env in ("test", "prod"):
        OnboardingTicket.objects.create(
            project=people.project, environment=env, created_by=people.developer, status="draft"
        )
    many = (_queries(client, page), _queries(client, cockpit_url()))
    assert many == few
    assert many[1] <= 16  # the session and the access check (7), then one query per part
    html = client.get(cockpit_url()).content.decode()
    assert 'data-field="version">v50</code>' in html and html.count("data-release=") == 5


def test_the_page_loads_the_cockpit_and_refreshes_it_on_live_events(client, people):
    client.force_login(people.viewer)
    html = client.get(reverse("project-detail", args=["orders"])).content.decode()
    assert f'hx-get="{cockpit_url()}"' in html
    assert "live-ticket-changed from:body" in html and "live-environment-changed from:body" in html
    assert 'hx-trigger="live-release-changed from:body delay:300ms"' in html
    assert 'hx-select-oob="#cockpit-db-test,#cockpit-db-prod,#cockpit-tickets"' in html


# --- access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "test/live/", "test/traffic/"])
def test_an_outsider_gets_404_from_every_cockpit_url(client, people, suffix):
    make_environment(people, "test")
    client.force_login(people.outsider)
    assert client.get(f"/projects/orders/cockpit/{suffix}").status_code == 404
    client.force_login(people.viewer)
    assert client.get(f"/projects/orders/cockpit/{suffix}").status_code == 200


def test_live_parts_of_an_environment_not_onboarded_are_404(client, people):
    client.force_login(people.viewer)
    assert client.get("/projects/orders/cockpit/prod/live/").status_code == 404
    assert client.get("/projects/orders/cockpit/qa/traffic/").status_code == 404


def test_an_unreachable_cluster_and_prometheus_say_unavailable(client, people, settings):
    make_environment(people, "test")
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    client.force_login(people.viewer)
    response = client.get("/projects/orders/cockpit/test/live/")
    assert response.status_code == 200
    assert 'data-state="unavailable"' in response.content.decode()
    response = client.get("/projects/orders/cockpit/test/traffic/")
    assert response.status_code == 200
    assert 'data-state="unavailable"' in response.content.decode()
    settings.PROMETHEUS_URL = ""
    assert 'data-state="off"' in client.get("/projects/orders/cockpit/test/traffic/").content.decode()


# --- the API --------------------------------------------------------------------------------------------


def test_the_api_serves_the_same_data(client, people):
    make_environment(people, "test")
    history(people, 4)
    client.force_login(people.viewer)
    response = client.get("/api/projects/orders/cockpit/")
    assert response.status_code == 200
    body = response.json()
    test = environment_row(body, "test")
    assert test["running"]["version"] == "v4"
    assert [r["version"] for r in test["releases"]] == ["v4", "v3", "v2"]
    assert environment_row(body, "prod")["onboarded"] is False
    assert body["open_tickets"] == {"count": 0, "tickets": []}

    # With the live parts, an unreachable cluster is an answer, not a failed request.
    response = client.get("/api/projects/orders/cockpit/?live=true")
    assert response.status_code == 200
    test = environment_row(response.json(), "test")
    assert test["live"]["error"] and test["live"]["deployment"] is None
    assert test["traffic"] == {"state": "off", "minutes": 0, "requests": [], "errors": [], "error": ""}
    response = client.get("/api/projects/orders/cockpit/?live=maybe")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"live"}

    client.force_login(people.outsider)
    response = client.get("/api/projects/orders/cockpit/")
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "errors"}
    assert client.get("/api/projects/nonesuch/cockpit/").status_code == 404


def test_sparkline_points_scale_to_the_highest_value():
    assert cockpit.sparkline([]) == []
    flat = cockpit.sparkline([0.0, 0.0, 0.0], width=10, height=10)
    assert flat == ["0.0,9.0 5.0,9.0 10.0,9.0"]
    assert cockpit.sparkline([0.0, 2.0, None, 1.0], width=30, height=10) == [
        "0.0,9.0 10.0,1.0",
        "30.0,5.0 30.0,5.0",
    ]
    assert cockpit.last_value([1.0, None]) == 1.0 and cockpit.last_value([None]) is None


def test_the_cockpit_speaks_chinese(client, people):
    make_environment(people, "test")
    client.force_login(people.developer)
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    html = client.get(cockpit_url()).content.decode()
    assert "尚未接入。" in html and "尚未发布。" in html and "0 个未关闭的工单" in html
    assert "监控" in html


def test_the_dashboard_link_opens_grafana_once_the_dashboard_is_saved(client, people, settings):
    settings.GRAFANA_URL, settings.GRAFANA_PUBLIC_URL = (
        "http://grafana.internal",
        "https://grafana.example.com",
    )
    env = make_environment(people, "test")
    client.force_login(people.developer)
    page = client.get("/projects/orders/cockpit/").content.decode()
    # Not saved yet: its place on the environment page.
    assert "/projects/orders/env/test/#grafana-dashboard" in page
    Dashboard.objects.create(
        environment=env, uid="svc-orders-test", folder_uid="opsportal-orders", url="/d/x/y"
    )
    page = client.get("/projects/orders/cockpit/").content.decode()
    assert 'href="https://grafana.example.com/d/x/y"' in page
    assert client.get("/api/projects/orders/cockpit/").json()["environments"][0]["dashboard_url"] == (
        "https://grafana.example.com/d/x/y"
    )
