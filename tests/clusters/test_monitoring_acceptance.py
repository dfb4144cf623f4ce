"""Issue 13's acceptance, end to end on running processes: the real go-hello (built like a release) on
the sandbox's pod network, Debian's Prometheus configured by the portal (its http_sd job per cluster and
the portal's own /metrics job), Daphne serving the discovery, the metrics API and the page, Chromium
drawing the panel, and the Grafana stand-in holding the dashboard whose expressions read the same data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from django.db import transaction

from clusters.choices import PrometheusConfigStatus
from clusters.models import Dashboard
from clusters.services.dashboards import dashboard_request_sync
from clusters.tasks import delete_dashboard, sync_dashboard
from integrations.grafana.client import GrafanaClient
from integrations.prometheus import PrometheusClient
from observability.monitoring.dashboards import dashboard_uid
from sandbox.kube import podnet
from tests.browser import sign_in
from tests.fixtures.clusters import VALID_REQUEST
from tests.fixtures.prometheus import apply_prometheus_config
from tests.fixtures.services import BASE_DIR, running_daphne
from tests.fixtures.standins import GRAFANA_TOKEN
from tests.helpers.environments import provision, run_change
from tests.polling import until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.kube,
    pytest.mark.standins,
    pytest.mark.browser,
]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", str(BASE_DIR / "var" / "test-artifacts")))
GO_REQUEST = {
    **VALID_REQUEST,
    "replicas": 1,
    "hpa_min": 1,
    "hpa_max": 3,
    "cpu_request": "50m",
    "memory_request": "64Mi",
    "health_path": "/healthz",
    "startup_seconds": 5,
    "runtime_options": "",
    "eureka_enabled": False,
    "env_vars": [],
}


@pytest.fixture(scope="module")
def portal(django_db_setup, prometheus_server, tmp_path_factory):
    """Daphne reading the session's Prometheus: it serves the discovery, /metrics, the API and the page."""
    with running_daphne(
        tmp_path_factory.mktemp("daphne-acceptance"),
        PROMETHEUS_URL=prometheus_server.url,
        PROMETHEUS_SCRAPE_INTERVAL="5",
    ) as url:
        yield url


def _app_targets(prometheus: PrometheusClient, pool: str) -> list[dict]:
    return [
        t for t in prometheus.targets() if t["scrapePool"] == pool and t["labels"].get("project") == "orders"
    ]


def _up(targets: list[dict], count: int) -> list[dict] | None:
    return targets if len(targets) == count and all(t["health"] == "up" for t in targets) else None


def _requests_200(client, env) -> float:
    answer = client.get(f"/api/projects/orders/environments/{env.environment}/metrics/?panel=requests")
    assert answer.status_code == 200, answer.content
    values = [v for s in answer.json()["series"] if s["name"] == "200" for _t, v in s["values"] if v]
    return max(values, default=0.0)


def test_go_hello_is_scraped_per_pod_drawn_and_dashboarded(
    client,
    people,
    settings,
    local_clusters,
    demo_images,
    prometheus_server,
    portal,
    grafana_standin,
    chromium,
):
    cluster = local_clusters["test"]
    state = apply_prometheus_config(settings, prometheus_server, portal_url=portal)
    assert state.status == PrometheusConfigStatus.APPLIED, state.error
    prometheus = PrometheusClient(prometheus_server.url)
    pool = f"opsportal-sd-{cluster.name}"

    # The portal scrapes itself with the token, through the configuration it applied.
    until("Prometheus to scrape the portal", lambda: prometheus.query('up{job="opsportal"} == 1'), timeout=60)

    people.project.language = "go"
    people.project.save(update_fields=["language"])
    env = provision(people, cluster, **{**GO_REQUEST, "image": demo_images["go-hello"]})

    # One target per pod, up, with the environment's labels (the acceptance asks for 30 s).
    (target,) = until(
        "go-hello's target to be up", lambda: _up(_app_targets(prometheus, pool), 1), timeout=30
    )
    assert {k: target["labels"][k] for k in ("project", "env", "service")} == {
        "project": "orders",
        "env": "test",
        "service": "orders",
    }
    pod_address = target["labels"]["instance"]
    assert podnet.route_device(pod_address.rsplit(":", 1)[0]).startswith("opsbr")  # the sandbox's bridge

    # Scaling to 3 gives 3 targets. Through the autoscaler's floor, as ops change it: a plain scale within
    # the HPA's range is undone by the HPA at its next sync when the load is low.
    client.force_login(people.ops)
    answer = client.put(
        "/api/projects/orders/environments/test/config/",
        {"request": {"hpa_min": 3, "replicas": 3}, "overrides": {}},
        content_type="application/json",
    )
    assert answer.status_code == 202, answer.content
    run_change(answer.json()["id"])
    seen: list[list[dict]] = []

    def three_up():
        targets = _app_targets(prometheus, pool)
        seen.append(
            [{"pod": t["labels"].get("pod"), "health": t["health"], "error": t["lastError"]} for t in targets]
        )
        return _up(targets, 3)

    try:
        targets = until("three targets up", three_up, timeout=120)
    except AssertionError as exc:
        pods = client.get("/api/projects/orders/environments/test/").json()
        raise AssertionError(
            f"{exc}; targets {seen[-1:]}, pods {[(p['name'], p['phase']) for p in pods['pods']]}"
        ) from None
    client.force_login(people.developer)

    # A bounded burst to every pod, then the metrics API reads a non-zero rate for code 200.
    with requests.Session() as session:
        for t in targets:
            for _ in range(100):
                assert session.get(f"http://{t['labels']['instance']}/", timeout=5).status_code == 200
    until("a request rate for 200", lambda: _requests_200(client, env) > 0, timeout=60)

    # The panel draws it in Chromium (no Prometheus call while the page renders: the panels fetch).
    page = sign_in(chromium, portal, people.developer.username)
    page.goto(f"{portal}/projects/orders/env/test/")
    page.wait_for_selector("#panel-requests[data-state=drawn]", timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "go-hello-monitoring.png"
    page.locator("#monitoring").screenshot(path=str(shot))
    assert shot.stat().st_size > 1000
    page.context.close()

    # The Grafana dashboard: in the project's folder, and its expressions read the same real data.
    settings.GRAFANA_URL, settings.GRAFANA_TOKEN = grafana_standin.url, GRAFANA_TOKEN
    settings.GRAFANA_PROMETHEUS_URL = prometheus_server.url
    # The sync runs here, with this process's Grafana settings, inside the transaction: the task the request
    # queues on commit reaches the session's worker (which has no Grafana) only once this run has ended it.
    # Queued first, the worker claimed the run and failed it ("Grafana is not configured") under load.
    with transaction.atomic():
        dashboard = dashboard_request_sync(environment=env, reason="acceptance")
        sync_dashboard.apply(kwargs={"dashboard_id": dashboard.pk, "run_token": str(dashboard.run_token)})
    grafana = GrafanaClient(grafana_standin.url, GRAFANA_TOKEN)
    saved = grafana.dashboard_get(dashboard_uid("orders", "test"))
    assert saved is not None and saved["meta"]["folderUid"]
    panels = {panel["title"]: panel for panel in saved["dashboard"]["panels"]}
    (requests_panel,) = [p for p in panels.values() if "status code" in p["title"]]
    expr = requests_panel["targets"][0]["expr"].replace("$__rate_interval", "1m")
    assert any(float(s["value"][1]) > 0 for s in prometheus.query(expr)), expr

    # Teardown: the targets leave Prometheus and the dashboard leaves Grafana.
    client.force_login(people.ops)
    assert client.delete("/api/projects/orders/environments/test/").status_code == 200
    assert not Dashboard.objects.filter(uid=dashboard.uid).exists()
    delete_dashboard.apply(kwargs={"uid": dashboard.uid})  # the task the teardown queued, run here
    assert grafana.dashboard_get(dashboard.uid) is None
    until("go-hello's targets to go", lambda: not _app_targets(prometheus, pool), timeout=60)
