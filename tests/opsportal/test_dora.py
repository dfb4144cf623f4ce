"""DORA metrics: a seeded production history with known timestamps gives hand-computed figures, through
the API and on the pages; who may see them."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.helpers.dora import DAY, MINUTE, T0, H, Seeder, at, seed

pytestmark = pytest.mark.django_db


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def period_query(**extra) -> dict:
    return {"start": T0.isoformat(), "end": at(T0, 7 * DAY).isoformat(), **extra}


def test_a_seeded_history_gives_the_hand_computed_figures(people):
    rows = seed(people, T0)
    response = api(people.viewer).get(reverse("api-project-dora", args=["orders"]), period_query())
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["project"] == "orders" and body["environment"] == "prod" and body["days"] == 7

    # Four deployments succeeded in 7 days (D1, D2, D4, D5; D3's rollout failed, rollbacks do not count).
    assert body["deployment_frequency"] == {"deployments": 4, "per_day": 4 / 7, "per_week": 4.0}
    # Lead times 11400 s (D1), 18600 s (D2), 2400 s (D4); D5 has no commit time.
    assert body["lead_time"] == {
        "count": 3,
        "without_commit_time": 1,
        "median_seconds": 11400.0,
        "p90_seconds": 18600.0,
    }
    # D2 (regressed, rolled back), D3 (rollout failed, rolled back), D4 and D5 (critical alerts) of 5.
    assert body["change_failure_rate"] == {
        "deployments": 5,
        "failed": 4,
        "rate": 0.8,
        "causes": {"rollout_failed": 1, "regressed": 1, "rolled_back": 2, "critical_alert": 2},
    }
    # Restored in 1200 s (D2), 660 s (D3), 2700 s (D4); D5 not yet.
    assert body["time_to_restore"] == {
        "count": 3,
        "unrestored": 1,
        "median_seconds": 1200.0,
        "p90_seconds": 2700.0,
    }
    changes = {c["record_id"]: c for c in body["changes"]}
    assert list(changes) == [rows[k].pk for k in ("d1", "d2", "d3", "d4", "d5")]
    d2, d3, d4, d5 = (changes[rows[k].pk] for k in ("d2", "d3", "d4", "d5"))
    assert changes[rows["d1"].pk]["failed"] is False and changes[rows["d1"].pk]["causes"] == []
    assert d2["causes"] == ["regressed", "rolled_back"]
    assert (parse(d2["failed_at"]), parse(d2["restored_at"])) == (
        at(T0, DAY + 20 * MINUTE),
        at(T0, DAY + 40 * MINUTE),
    )
    assert d3["causes"] == ["rollout_failed", "rolled_back"] and d3["restore_seconds"] == 660.0
    assert d3["lead_time_seconds"] is None
    assert d4["causes"] == ["critical_alert"] and d4["restore_seconds"] == 2700.0
    assert d5["causes"] == ["critical_alert"] and d5["restored_at"] is None and d5["restore_seconds"] is None
    assert [(d["deployments"], d["failed"]) for d in body["daily"]] == [
        (1, 0),
        (1, 1),
        (0, 1),
        (1, 1),
        (1, 1),
        (0, 0),
        (0, 0),
    ]
    assert parse(body["daily"][0]["start"]) == T0
    assert set(body["definitions"]) == {
        "deployment",
        "deployment_frequency",
        "lead_time",
        "change_failure_rate",
        "time_to_restore",
    }

    # The test environment has its own figures: one deployment (lead time 2 h 1 min), failed by the
    # test alert that prod ignored, still firing.
    test = (
        api(people.viewer)
        .get(reverse("api-project-dora", args=["orders"]), period_query(environment="test"))
        .json()
    )
    assert test["deployment_frequency"]["deployments"] == 1
    assert test["lead_time"]["median_seconds"] == 2 * H + MINUTE
    assert test["change_failure_rate"]["rate"] == 1.0
    assert test["change_failure_rate"]["causes"]["critical_alert"] == 1
    assert test["time_to_restore"]["unrestored"] == 1

    # A period that ends before D4 starts: D4's alert and D5 are outside it; D3 is still restored by R2.
    early = (
        api(people.viewer)
        .get(
            reverse("api-project-dora", args=["orders"]),
            {"start": T0.isoformat(), "end": at(T0, 3 * DAY).isoformat()},
        )
        .json()
    )
    assert early["change_failure_rate"]["deployments"] == 3 and early["change_failure_rate"]["failed"] == 2
    assert early["time_to_restore"]["median_seconds"] == (1200 + 660) / 2


def test_the_overview_pools_every_project_and_lists_each(people):
    seed(people, T0)
    response = api(people.ops).get(reverse("api-dora"), period_query())
    assert response.status_code == 200, response.content
    body = response.json()
    # orders' 4 successes and billing's one; lead times 11400, 18600, 2400 and billing's 4800 s.
    assert body["deployment_frequency"]["deployments"] == 5
    assert body["lead_time"]["median_seconds"] == (4800 + 11400) / 2
    assert body["lead_time"]["p90_seconds"] == 18600.0
    assert body["change_failure_rate"]["deployments"] == 6 and body["change_failure_rate"]["failed"] == 4
    assert body["time_to_restore"]["median_seconds"] == 1200.0
    assert [row["project"] for row in body["projects"]] == ["billing", "orders"]
    billing, orders = body["projects"]
    assert billing["change_failure_rate"]["rate"] == 0.0
    assert billing["lead_time"]["median_seconds"] == 4800.0
    assert orders["change_failure_rate"]["rate"] == 0.8
    assert "changes" not in body


def test_the_figures_take_a_fixed_number_of_queries(people):
    seed(people, T0)
    from opsportal import dora

    period = dora.Period(start=T0, end=at(T0, 7 * DAY))
    dora.dora_project(user=people.viewer, name="orders", environment="prod", period=period)  # groups cached
    with CaptureQueriesContext(connection) as few:
        dora.dora_project(user=people.viewer, name="orders", environment="prod", period=period)
    s = Seeder(people, people.project, T0)
    s.count = 500
    for n in range(10):
        s.deploy(committed=5 * DAY, started=5 * DAY + n * H, finished=5 * DAY + n * H + MINUTE)
        s.alert(starts=5 * DAY + n * H + 2 * MINUTE)
    with CaptureQueriesContext(connection) as many:
        _project, report = dora.dora_project(
            user=people.viewer, name="orders", environment="prod", period=period
        )
    assert len(many) == len(few), [q["sql"][:150] for q in many.captured_queries]
    assert report["deployment_frequency"]["deployments"] == 14


@pytest.mark.parametrize(
    "query, field",
    [
        ({"start": "2026-03-09T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "start"),
        ({"start": "2025-01-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "start"),
        ({"start": "last tuesday"}, "start"),
        ({"start": "0001-01-01T00:00:00Z"}, "start"),
        ({"end": "9999-12-31T23:59:59Z"}, "end"),
        ({"end": "soon"}, "end"),
        ({"environment": "staging"}, "environment"),
    ],
)
def test_a_bad_period_is_a_400_in_the_one_error_shape(people, query, field):
    for url, user in (
        (reverse("api-project-dora", args=["orders"]), people.viewer),
        (reverse("api-dora"), people.ops),
    ):
        response = api(user).get(url, query)
        assert response.status_code == 400, response.content
        body = response.json()
        assert set(body) == {"detail", "errors"} and list(body["errors"]) == [field]


def test_who_may_see_the_figures(people, client):
    seed(people, T0)
    project_url = reverse("api-project-dora", args=["orders"])
    assert api(people.outsider).get(project_url).status_code == 404
    # An outsider's bad query is a 404 too: the check of access comes first.
    assert api(people.outsider).get(project_url, {"environment": "staging"}).status_code == 404
    default = api(people.ops).get(project_url)
    assert default.status_code == 200
    # Without a period: production, the 30 days up to now.
    assert default.json()["environment"] == "prod" and default.json()["days"] == 30
    assert abs(parse(default.json()["end"]) - timezone.now()) < timedelta(minutes=1)
    assert api(people.viewer).get(reverse("api-project-dora", args=["nothing"])).status_code == 404
    for user in (people.owner, people.viewer, people.qa, people.outsider):
        response = api(user).get(reverse("api-dora"))
        assert response.status_code == 404
        assert set(response.json()) == {"detail", "errors"}
    assert APIClient().get(project_url).status_code in (401, 403)

    client.force_login(people.outsider)
    assert client.get(reverse("project-dora", args=["orders"])).status_code == 404
    client.force_login(people.owner)
    assert client.get(reverse("dora-overview")).status_code == 404
    client.force_login(people.ops)
    assert client.get(reverse("dora-overview")).status_code == 200


def test_the_pages_show_the_figures_definitions_and_chart_data(people, client):
    # The history a little less than 7 days back, so the page's "7 days" holds D1 to D5.
    base = timezone.now() - timedelta(days=7) + timedelta(minutes=1)
    seed(people, base)
    client.force_login(people.viewer)
    response = client.get(reverse("project-dora", args=["orders"]), {"days": "7"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-environment="prod" data-days="7"' in html
    assert 'data-figure="per-week">4.0 / week' in html
    assert 'data-figure="lead-median">3 h 10 min' in html
    assert 'data-figure="lead-p90">5 h 10 min' in html
    assert 'data-figure="rate">80 %' in html
    assert 'data-figure="restore-median">20 min' in html
    assert 'data-figure="restore-p90">45 min' in html
    for key in ("deployment", "deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"):
        assert f'data-definition="{key}"' in html
    assert "Change failure rate: failed deployments divided by" in html
    assert 'id="dora-chart-data"' in html
    assert "<script>" not in html and " style=" not in html  # the CSP: data only, drawn by static/js/dora.js

    # The same page in Chinese: definitions and units translated.
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    html = client.get(reverse("project-dora", args=["orders"]), {"days": "7"}).content.decode()
    assert "变更失败率" in html
    assert "Change failure rate: failed deployments divided by" not in html

    # An unknown choice is the default, never an error.
    assert (
        client.get(reverse("project-dora", args=["orders"]), {"days": "5", "environment": "x"}).status_code
        == 200
    )

    # The overview tab loads the fragment and the chart script.
    overview = client.get(reverse("project-detail", args=["orders"])).content.decode()
    assert reverse("project-dora", args=["orders"]) in overview
    assert "js/dora.js" in overview and "uplot/uPlot.iife.min.js" in overview

    client.force_login(people.ops)
    html = client.get(reverse("dora-overview"), {"days": "7"}).content.decode()
    assert 'data-project="billing"' in html and 'data-project="orders"' in html
    assert 'data-rate="4/5"' in html and 'data-rate="0/1"' in html
    assert "js/dora.js" in html
