"""The cockpit's live parts against real systems: the Deployment and autoscaler from the local control
plane, and the request-rate and error-ratio sparklines from Debian's Prometheus scraping a tiny exporter
in this module."""

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.urls import reverse

from sandbox.procs import free_port, spawn, stop, wait_for
from tests.fixtures.ci import unavailable
from tests.helpers.cockpit import make_environment
from tests.helpers.environments import provision
from tests.polling import until

PROMETHEUS = Path("/usr/bin/prometheus")


# --- the cluster part -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.kube
def test_live_fragment_shows_pods_ready_of_desired_and_the_autoscaler_range(client, people, local_clusters):
    env = provision(people, local_clusters["test"])
    client.force_login(people.viewer)
    response = client.get(reverse("project-cockpit-live", args=["orders", "test"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="ok"' in html
    assert re.search(r'data-field="pods">2/2<', html), html
    assert re.search(r'data-field="hpa">\d+ of 2–5<', html), html
    assert "target 70%" in html
    live = response.context["live"]
    assert live["deployment"] == {"ready": 2, "desired": 2, "rollout": "complete"}
    assert (live["hpa"]["min"], live["hpa"]["max"], live["hpa"]["cpu_target"]) == (2, 5, 70)

    # The API serves the same on request; the environment not onboarded has no live part.
    body = client.get(f"/api/projects/{env.project.name}/cockpit/?live=true").json()
    rows = {row["environment"]: row for row in body["environments"]}
    assert rows["test"]["live"] == live
    assert rows["test"]["traffic"]["state"] == "off"  # no Prometheus in this test
    assert rows["prod"]["live"] is None and rows["prod"]["traffic"] is None
    plain = client.get(f"/api/projects/{env.project.name}/cockpit/").json()["environments"]
    assert [(row["live"], row["traffic"]) for row in plain] == [(None, None), (None, None)]


# --- the traffic part -----------------------------------------------------------------------------------


class _Exporter(BaseHTTPRequestHandler):
    """Answers any path with 200 (or 500 under /fail) and counts it; /metrics exposes the counts with
    the labels the portal's scrape targets give an application's series (project, env)."""

    counts: dict[str, int] = {"200": 0, "500": 0}
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802 - the handler's API
        if self.path == "/metrics":
            with self.lock:
                lines = [
                    f'http_requests_total{{code="{code}",project="orders",env="test"}} {count}'
                    for code, count in self.counts.items()
                ]
            body = ("# TYPE http_requests_total counter\n" + "\n".join(lines) + "\n").encode()
        else:
            code = "500" if self.path.startswith("/fail") else "200"
            with self.lock:
                self.counts[code] += 1
            body = b"ok"
        self.send_response(500 if self.path.startswith("/fail") else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def exporter():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory):
    """Debian's Prometheus on a free loopback port, scraping the exporter every second."""
    if not PROMETHEUS.exists():
        unavailable(f"{PROMETHEUS} is missing (Debian package `prometheus`; .ci/run installs it).")
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{exporter}']\n"
    )
    port = free_port()
    log = work / "prometheus.log"
    proc = spawn(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        log=log,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, timeout=60, what="Prometheus", proc=proc, log=log)
    except RuntimeError as exc:
        stop(proc)
        unavailable(str(exc))
    yield url
    stop(proc)


def _up(url: str) -> bool:
    answer = requests.get(f"{url}/api/v1/query", params={"query": 'up{job="app"}'}, timeout=2).json()
    return any(sample["value"][1] == "1" for sample in answer["data"]["result"])


def _ys(html: str, kind: str) -> set[str]:
    svg = re.search(rf'<svg class="sparkline sparkline-{kind}".*?</svg>', html, re.S).group(0)
    points = " ".join(re.findall(r'points="([^"]*)"', svg))
    return {pair.split(",")[1] for pair in points.split()}


@pytest.mark.django_db
def test_sparklines_draw_the_burst_from_prometheus(client, people, settings, prometheus, exporter):
    make_environment(people, "test")
    settings.PROMETHEUS_URL = prometheus
    settings.PROMETHEUS_SCRAPE_INTERVAL = 1
    settings.COCKPIT_SPARKLINE_MINUTES = 1  # one point a second: the test need not wait for an hour
    until("Prometheus to scrape the exporter", lambda: _up(prometheus), timeout=30)
    client.force_login(people.viewer)
    url = reverse("project-cockpit-traffic", args=["orders", "test"])
    # Quiet scrapes first, so the line has a floor to rise from.
    until(
        "a few quiet samples", lambda: len(_ys(client.get(url).content.decode(), "requests")) >= 1, timeout=30
    )

    with requests.Session() as session:
        for index in range(60):
            session.get(f"http://{exporter}/{'fail' if index % 4 == 0 else 'hello'}", timeout=2)

    def drawn():
        response = client.get(url)
        errors = [v for v in response.context["traffic"]["errors"] if v is not None]
        if len(_ys(response.content.decode(), "requests")) > 1 and errors:
            return response
        return None

    response = until("the burst to show in the sparklines", drawn, timeout=30)
    html = response.content.decode()
    assert 'data-state="ok"' in html and "style=" not in html
    traffic = response.context["traffic"]
    assert max(v for v in traffic["requests"] if v is not None) > 0
    assert min(v for v in traffic["requests"] if v is not None) == 0  # the quiet seconds before it
    # a quarter of the burst failed (every fourth request went to /fail)
    assert max(v for v in traffic["errors"] if v is not None) == pytest.approx(0.25, abs=0.01)


@pytest.mark.django_db
def test_traffic_is_unavailable_when_prometheus_is_not_there(client, people, settings):
    make_environment(people, "test")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # bound, never listening: connections are refused
        settings.PROMETHEUS_URL = f"http://127.0.0.1:{closed}"
        client.force_login(people.viewer)
        response = client.get(reverse("project-cockpit-traffic", args=["orders", "test"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="unavailable"' in html and "<svg" not in html
