"""The ticket preview shows how a pod will stop: the computed worst-case stale window and what it is made
of, the preStop wait and the termination grace period (page and API), and warns when ops shortened the
wait below the window. No cluster is needed: the window is computed from the request alone."""

from __future__ import annotations

import pytest

from deploys import services
from deploys.models import OnboardingTicket
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db


def _ticket(people, **changes) -> OnboardingTicket:
    return services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request={**VALID_REQUEST, **changes},
        submit=True,
    )


def _urls(ticket: OnboardingTicket) -> tuple[str, str]:
    path = f"projects/{ticket.project.name}/tickets/{ticket.pk}/preview/"
    return f"/{path}", f"/api/{path}"


def test_the_preview_shows_the_stale_window_of_a_eureka_service_and_how_it_is_made_up(client, people):
    ticket = _ticket(people, eureka_enabled=True)
    page_url, api_url = _urls(ticket)
    client.force_login(people.developer)

    budget = client.get(api_url).json()["stop_budget"]
    assert [(part["code"], part["seconds"]) for part in budget["parts"]] == [
        ("eureka_response_cache", 30),
        ("registry_refresh", 30),
        ("loadbalancer_cache", 35),
        ("margin", 5),
    ]
    assert budget["parts"][2]["label"] == "Callers' load-balancer cache"
    assert {
        key: budget[key] for key in ("stale_window", "sleep", "sleep_short", "hook_timeout", "shutdown")
    } == {
        "stale_window": 100,
        "sleep": 100,
        "sleep_short": False,
        "hook_timeout": 5,
        "shutdown": 30,
    }
    assert (budget["grace"], budget["deregister_path"]) == (135, "/actuator/serviceregistry")

    page = client.get(page_url).content.decode()
    assert 'id="stale-window"' in page and "Worst-case stale window: 100 s" in page
    assert (
        '<tr class="window-part" data-code="registry_refresh"><td>Clients&#x27; registry fetch interval</td>'
        in page
    )
    assert "preStop: POST /actuator/serviceregistry OUT_OF_SERVICE while the application still serves" in page
    assert (
        "terminationGracePeriodSeconds 135 s = 5 s de-registration timeout + 100 s wait + 30 s shutdown."
        in page
    )
    assert "stale-window-short" not in page


def test_the_figures_of_the_request_make_the_window(client, people):
    ticket = _ticket(
        people,
        eureka_enabled=True,
        eureka_response_cache_seconds=0,
        registry_refresh_seconds=10,
        loadbalancer_cache_seconds=0,
    )
    client.force_login(people.developer)
    budget = client.get(_urls(ticket)[1]).json()["stop_budget"]
    assert (budget["stale_window"], budget["sleep"], budget["grace"]) == (15, 15, 50)


def test_a_wait_ops_shortened_below_the_window_is_a_warning(client, people):
    ticket = _ticket(people, eureka_enabled=True)
    OnboardingTicket.objects.filter(pk=ticket.pk).update(overrides={"prestop_sleep_seconds": 40})
    page_url, api_url = _urls(ticket)
    client.force_login(people.ops)
    budget = client.get(api_url).json()["stop_budget"]
    assert (budget["stale_window"], budget["sleep"], budget["sleep_short"], budget["grace"]) == (
        100,
        40,
        True,
        75,
    )
    page = client.get(page_url).content.decode()
    assert "The preStop wait (40 s) is shorter than the stale window (100 s)" in page


def test_without_eureka_the_window_is_the_endpoints_removal(client, people):
    ticket = _ticket(people, eureka_enabled=False)
    page_url, api_url = _urls(ticket)
    client.force_login(people.developer)
    budget = client.get(api_url).json()["stop_budget"]
    assert [(part["code"], part["seconds"]) for part in budget["parts"]] == [("endpoints", 5)]
    assert (budget["stale_window"], budget["hook_timeout"], budget["grace"], budget["deregister_path"]) == (
        5,
        0,
        35,
        "",
    )
    page = client.get(page_url).content.decode()
    assert "Worst-case stale window: 5 s" in page and "preStop: wait 5 s; only then SIGTERM." in page
    assert "terminationGracePeriodSeconds 35 s = 5 s wait + 30 s shutdown." in page


def test_the_window_is_explained_in_chinese(client, people):
    ticket = _ticket(people, eureka_enabled=True)
    client.force_login(people.developer)
    page = client.get(_urls(ticket)[0], HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "最坏情况下的过期窗口：100 秒" in page
    assert "调用方负载均衡缓存" in page


def test_a_request_that_does_not_render_has_no_window(client, people):
    ticket = _ticket(people, eureka_enabled=True)
    OnboardingTicket.objects.filter(pk=ticket.pk).update(
        request={**ticket.request, "registry_refresh_seconds": 0}
    )
    client.force_login(people.developer)
    answer = client.get(_urls(ticket)[1]).json()
    assert answer["stop_budget"] is None
    assert "registry_refresh_seconds must be from 1 to 300 seconds." in answer["error"]
