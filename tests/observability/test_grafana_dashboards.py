"""The dashboard model: stable, valid uids, and a dashboard the Grafana stand-in accepts (and refuses
once broken), built from the same PromQL templates as the environment page."""

from __future__ import annotations

import copy
import re

import pytest

from integrations.errors import Invalid
from integrations.grafana.client import GrafanaClient
from observability.monitoring.dashboards import build_dashboard, dashboard_uid, folder_uid
from observability.monitoring.promql import PANELS, Scope
from tests.fixtures.standins import GRAFANA_TOKEN

UID = re.compile(r"[a-zA-Z0-9_-]{1,40}")
SCOPE = Scope(
    project="go-hello", env="prod", namespace="go-hello-prod", deployment="go-hello", hpa="go-hello"
)


def test_uids_are_short_valid_stable_and_distinct_even_for_long_names():
    assert dashboard_uid("go-hello", "prod") == "svc-go-hello-prod"
    assert folder_uid("go-hello") == "opsportal-go-hello"
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"  # the same first 60 characters
    uids = {dashboard_uid(p, e) for p in ("go-hello", long_a, long_b) for e in ("test", "prod")}
    folders = {folder_uid(p) for p in ("go-hello", long_a, long_b)}
    assert len(uids) == 6 and len(folders) == 3
    assert all(UID.fullmatch(u) for u in uids | folders)
    assert dashboard_uid(long_a, "prod") == dashboard_uid(long_a, "prod")
    # A short name cannot be chosen to equal a long name's hashed uid: only hashed uids contain "_".
    hashed = folder_uid(long_a)
    assert "_" in hashed and "_" not in folder_uid("go-hello")


def test_one_timeseries_panel_per_panel_in_two_columns_with_the_templates_queries():
    model = build_dashboard(SCOPE, datasource_uid="prom", title="go-hello (prod)")
    assert model["uid"] == "svc-go-hello-prod" and model["title"] == "go-hello (prod)"
    assert model["tags"] == ["opsportal", "go-hello", "prod"]
    assert model["refresh"] == "30s" and model["time"] == {"from": "now-6h", "to": "now"}
    panels = model["panels"]
    assert [p["type"] for p in panels] == ["timeseries"] * len(PANELS)
    assert [p["fieldConfig"]["defaults"]["unit"] for p in panels] == [p.unit for p in PANELS]
    assert [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels[:3]] == [(0, 0), (12, 0), (0, 8)]
    requests = panels[0]
    assert requests["title"] == str(PANELS[0].title)
    for target in requests["targets"]:
        assert 'project="go-hello"' in target["expr"] and "$__rate_interval" in target["expr"]
        assert target["datasource"] == {"type": "prometheus", "uid": "prom"}
    assert len({t["refId"] for p in panels for t in p["targets"]}) >= 1
    [annotations] = model["annotations"]["list"]
    assert annotations["type"] == "dashboard" and annotations["builtIn"] == 1


@pytest.fixture
def grafana(grafana_standin):
    client = GrafanaClient(grafana_standin.url, GRAFANA_TOKEN)
    client.folder_ensure("opsportal-go-hello", "go-hello")
    client.datasource_ensure("prom", name="Prometheus", type="prometheus", url="http://127.0.0.1:9090")
    return client


def test_the_stand_in_accepts_the_built_dashboard(grafana, grafana_standin):
    model = build_dashboard(SCOPE, datasource_uid="prom", title="go-hello (prod)")
    saved = grafana.dashboard_save(model, folder_uid="opsportal-go-hello")
    assert saved["version"] == 1 and saved["url"] == "/d/svc-go-hello-prod/go-hello-prod"
    assert grafana.dashboard_get("svc-go-hello-prod")["dashboard"]["panels"] == model["panels"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda m: m["panels"][1]["targets"][0].update(expr=""), "empty expr"),
        (lambda m: m["panels"][1]["targets"][0].pop("refId"), "no refId"),
        (lambda m: m["panels"][2].pop("gridPos"), "gridPos"),
        (lambda m: m["panels"][0].update(type="timeseriez"), "unknown panel type"),
        (lambda m: m["panels"][0]["datasource"].update(uid="nope"), "does not exist"),
        (lambda m: m.update(title=""), "title"),
    ],
)
def test_the_stand_in_refuses_a_broken_dashboard(grafana, breakage, message):
    model = copy.deepcopy(build_dashboard(SCOPE, datasource_uid="prom", title="go-hello (prod)"))
    breakage(model)
    with pytest.raises(Invalid) as raised:
        grafana.dashboard_save(model, folder_uid="opsportal-go-hello")
    assert message in str(raised.value)


def test_the_built_dashboard_needs_its_data_source(grafana_standin):
    client = GrafanaClient(grafana_standin.url, GRAFANA_TOKEN)
    model = build_dashboard(SCOPE, datasource_uid="never-created", title="go-hello (prod)")
    with pytest.raises(Invalid):
        client.dashboard_save(model, folder_uid="")


def test_every_dashboard_expression_is_accepted_by_the_real_prometheus(prometheus_server):
    """Grafana replaces $__rate_interval with a duration before it asks Prometheus; with that done, every
    target of the dashboard parses and evaluates in Debian's Prometheus (no Invalid), also for a label
    value that tries to close the selector."""
    import time

    from integrations.prometheus.client import PrometheusClient

    client = PrometheusClient(prometheus_server.url)
    hostile = Scope(project='x"} or up{a="', env="prod", namespace="x-prod", deployment="x", hpa="x")
    now = time.time()
    checked = 0
    for scope in (SCOPE, hostile):
        for panel in build_dashboard(scope, datasource_uid="prom", title="t")["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m")
                assert "$__" not in expr, expr  # label_replace's "$1" stays: Grafana has no variable "1"
                client.query_range(expr, start=now - 300, end=now, step=15)  # raises Invalid on a parse error
                checked += 1
    assert checked >= 2 * len(PANELS)
