"""The Grafana stand-in's own extras: the outage switch (in process and over HTTP), state kept across a
restart for `make run`, and the plain page a dashboard link opens."""

from __future__ import annotations

import requests

from integrations.grafana.client import GrafanaClient
from sandbox.grafana import GrafanaStandin
from sandbox.run import start_grafana
from tests.fixtures.standins import GRAFANA_TOKEN

AUTH = {"Authorization": f"Bearer {GRAFANA_TOKEN}"}


def _dashboard(uid: str) -> dict:
    return {
        "uid": uid,
        "title": "Kept",
        "panels": [{"type": "text", "title": "t", "gridPos": {"h": 1, "w": 1, "x": 0, "y": 0}}],
    }


def test_the_outage_switch_answers_every_call_500_until_it_is_off(grafana_standin):
    url = grafana_standin.url
    assert requests.post(f"{url}/api/_standin/outage", headers=AUTH, timeout=5).json() == {"outage": True}
    assert requests.get(f"{url}/api/health", timeout=5).status_code == 500
    assert requests.get(f"{url}/api/search", headers=AUTH, timeout=5).status_code == 500
    assert requests.post(f"{url}/api/_standin/outage", timeout=5).status_code == 401  # needs the token
    requests.delete(f"{url}/api/_standin/outage", headers=AUTH, timeout=5)
    assert requests.get(f"{url}/api/health", timeout=5).status_code == 200


def test_injected_faults_answer_the_next_matching_calls(grafana_standin):
    grafana_standin.inject_fault(r"^/api/folders", status=503, count=1)
    client = GrafanaClient(grafana_standin.url, GRAFANA_TOKEN)
    answer = requests.get(f"{grafana_standin.url}/api/folders/x", headers=AUTH, timeout=5)
    assert answer.status_code == 503
    assert client.folder_get("x") is None  # the fault is used up


def test_make_run_keeps_the_state_and_token_across_a_restart(tmp_path):
    first = start_grafana(tmp_path / "grafana")
    try:
        client = GrafanaClient(first.url, first.token)
        client.folder_ensure("opsportal-kept", "kept")
        client.dashboard_save(_dashboard("svc-kept-test"), folder_uid="opsportal-kept")
    finally:
        first.stop()
    second = start_grafana(tmp_path / "grafana")
    try:
        assert second.token == first.token
        client = GrafanaClient(second.url, second.token)
        assert client.dashboard_get("svc-kept-test")["meta"]["version"] == 1
        saved = client.dashboard_save(_dashboard("svc-kept-test"), folder_uid="opsportal-kept")
        assert saved["version"] == 2
        assert (
            client.folder_ensure("opsportal-other", "other")["id"]
            != client.folder_get("opsportal-kept")["id"]
        )
    finally:
        second.stop()


def test_a_dashboard_link_opens_a_page_with_its_panels_and_queries():
    standin = GrafanaStandin(GRAFANA_TOKEN)
    standin.start()
    try:
        client = GrafanaClient(standin.url, GRAFANA_TOKEN)
        client.datasource_ensure("prom", name="P", type="prometheus", url="http://127.0.0.1:9")
        source = {"type": "prometheus", "uid": "prom"}
        panel = {
            "type": "timeseries",
            "title": "Requests <per second>",
            "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
            "datasource": source,
            "targets": [{"refId": "A", "expr": 'up{job="x"}', "legendFormat": "{{code}}"}],
        }
        saved = client.dashboard_save({"uid": "svc-page", "title": "Page", "panels": [panel]}, folder_uid="")
        page = requests.get(f"{standin.url}{saved['url']}", timeout=5)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assert "Requests &lt;per second&gt;" in page.text and "up{job=&quot;x&quot;}" in page.text
        assert requests.get(f"{standin.url}/d/nope/x", timeout=5).status_code == 404
    finally:
        standin.stop()
