"""The monitoring panels of an environment: the metrics API and the page, against a real Prometheus.

Debian's prometheus scrapes a small in-test exporter every second (``http_requests_total{method,code}``
and the request duration histogram, the names the Go and PHP services export), attached twice with the
target labels the portal's http_sd gives: once as the project ``orders``, once as another project's
service, whose series must never come back. Prometheus logs every query it runs (``query_log_file``),
so the tests assert on the expression the portal sent.
"""

import json
import os
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote
from urllib.request import urlopen

import pytest
import yaml
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from clusters.models import Cluster, ProjectEnvironment
from clusters.selectors.monitoring import monitoring_scope
from deploys.models import BuildRecipe, DeploymentRecord, Release
from integrations.prometheus.client import PrometheusClient
from observability.monitoring.promql import PANELS, panel_get, panel_queries, rate_window
from projects.models import Project, ProjectMember
from sandbox.procs import free_port, spawn, stop, wait_for
from tests.browser import CspWatch, sign_in
from tests.fixtures.ci import unavailable
from tests.fixtures.services import BASE_DIR, running_daphne

PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_INTERVAL = 5  # what the portal assumes (rate windows of 4 scrapes); Prometheus scrapes every 1 s
BURST = 60
EVIL = 'orders"} or up{'
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", str(BASE_DIR / "var" / "test-artifacts")))


# --- the exporter and Prometheus ------------------------------------------------------------------


class Exporter:
    """A loopback HTTP service with Prometheus metrics: GET /hello answers 200, /fail 500, /metrics."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "Requests", ["method", "code"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Request duration", registry=self.registry)
        for code in ("200", "500"):  # zero from the start: a series first seen at 60 has no increase
            self.requests.labels(method="GET", code=code)
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path == "/metrics":
                    body, code, kind = generate_latest(exporter.registry), 200, CONTENT_TYPE_LATEST
                else:
                    code = 200 if self.path == "/hello" else 500
                    exporter.requests.labels(method="GET", code=str(code)).inc()
                    exporter.duration.observe(0.012 if code == 200 else 0.3)
                    body, kind = b"hello\n", "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str) -> None:
        try:
            urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5).read()
        except OSError:
            pass  # /fail answers 500, which urllib raises

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RunningPrometheus:
    def __init__(self, url: str, query_log: Path):
        self.url = url
        self.query_log = query_log

    def queries(self) -> list[str]:
        """Every expression Prometheus ran, oldest first."""
        if not self.query_log.exists():
            return []
        lines = self.query_log.read_text(errors="replace").splitlines()
        return [json.loads(line)["params"]["query"] for line in lines if line.strip()]


@pytest.fixture(scope="module")
def exporter():
    exporter = Exporter()
    yield exporter
    exporter.close()


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory):
    if not Path(PROMETHEUS).exists():
        unavailable(f"{PROMETHEUS} is missing (Debian package `prometheus`; .ci/run installs it).")
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    target = f"127.0.0.1:{exporter.port}"
    config = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "query_log_file": str(workdir / "queries.log"),
        },
        "scrape_configs": [
            {
                "job_name": "opsportal-sd-test",
                "static_configs": [
                    # The labels the portal's http_sd gives each pod's target.
                    {
                        "targets": [target],
                        "labels": {
                            "project": "orders",
                            "env": "test",
                            "service": "orders",
                            "namespace": "orders-test",
                            "pod": "orders-1",
                        },
                    },
                    {
                        "targets": [target],
                        "labels": {
                            "project": "payroll",
                            "env": "test",
                            "service": "payroll",
                            "namespace": "payroll-test",
                            "pod": "payroll-1",
                        },
                    },
                ],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    proc = spawn(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        log=log,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: PrometheusClient(url).ready(), timeout=60, what="Prometheus", proc=proc, log=log)
        yield RunningPrometheus(url, workdir / "queries.log")
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def burst(prometheus, exporter):
    """A bounded burst of requests (mostly 200, a few 500), spread over three scrapes, and the wait
    until Prometheus holds the increase."""
    client = PrometheusClient(prometheus.url)
    wait_for(
        lambda: len(client.query('http_requests_total{code="200"} == 0')) == 2,
        timeout=30,
        what="The first scrape of both targets",
    )
    for index in range(BURST):
        exporter.get("/fail" if index % 10 == 9 else "/hello")
        time.sleep(3 / BURST)
    expr = 'increase(http_requests_total{project="orders",code="200"}[1m])'
    wait_for(
        lambda: any(float(s["value"][1]) > 0 for s in client.query(expr)),
        timeout=30,
        what="The burst in Prometheus",
    )
    # One more scrape after the last request, so every rate window holds it.
    time.sleep(2)
    return BURST


@pytest.fixture
def monitored(settings, prometheus):
    settings.PROMETHEUS_URL = prometheus.url
    settings.PROMETHEUS_SCRAPE_INTERVAL = SCRAPE_INTERVAL
    return prometheus


# --- the environment -----------------------------------------------------------------------------


def _cluster(name: str) -> Cluster:
    # The metrics never ask the cluster; the page's read of it fails at once (nothing listens on :9).
    return Cluster.objects.create(
        name=name,
        environment="test",
        api_url="https://127.0.0.1:9",
        auth_type="token",
        credential="unused",
        verify_tls=False,
    )


def _environment(project: Project, cluster: Cluster, namespace: str) -> ProjectEnvironment:
    return ProjectEnvironment.objects.create(
        project=project,
        environment="test",
        cluster=cluster,
        namespace=namespace,
        spec={"request": {}, "overrides": {}},
        provisioned_at=timezone.now(),
    )


@pytest.fixture
def env(people):
    return _environment(people.project, _cluster("unreachable-metrics"), "orders-test")


def _record(people, *, version: str, finished_at, kind: str = "release", outcome: str = "succeeded"):
    recipe = BuildRecipe.objects.filter(language="java").order_by("-version").first()
    release = Release.objects.create(
        project=people.project,
        environment="test",
        created_by=people.developer,
        branch="main",
        version=version,
        status="deployed",
        recipe=recipe,
        finished_at=finished_at,
    )
    return DeploymentRecord.objects.create(
        project=people.project,
        environment="test",
        kind=kind,
        release=release,
        image=f"registry.local/orders:{version}",
        outcome=outcome,
        actor=people.developer,
        finished_at=finished_at,
    )


URL = "/api/projects/orders/environments/test/metrics/"


def _error_shape(response) -> dict:
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    return body


# --- the API ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_panel_list_names_every_panel_without_asking_prometheus(client, people, env, settings):
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # nobody listens: a call would fail with 502
    client.force_login(people.viewer)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is True
    assert [p["id"] for p in body["panels"]] == [p.id for p in PANELS]
    requests = body["panels"][0]
    assert requests == {
        "id": "requests",
        "title": "Requests per second by status code",
        "unit": "reqps",
        "legends": ["{{code}}"],
    }
    assert {p["unit"] for p in body["panels"]} >= {"reqps", "percentunit", "s", "cores", "bytes"}


@pytest.mark.django_db
def test_after_a_burst_the_request_rate_of_code_200_is_not_zero(client, people, env, monitored, burst):
    client.force_login(people.developer)
    end = time.time()
    response = client.get(URL, {"panel": "requests", "start": end - 300, "end": end})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["panel"] == "requests" and body["unit"] == "reqps" and body["enabled"] is True
    assert body["start"] == pytest.approx(end - 300) and body["end"] == pytest.approx(end)
    assert body["step"] == 5  # ~240 points: 300 s / 240 → the 5 s minimum
    series = {s["name"]: s["values"] for s in body["series"]}
    assert set(series) == {"200", "500"}  # one line per code, only this project's
    rates = [value for _ts, value in series["200"] if value is not None]
    assert rates and max(rates) > 0
    assert all(isinstance(v, float) for v in rates)
    assert all(len(point) == 2 for point in series["200"])
    # The expression is the template's, with a rate window of four scrapes (or the step).
    window = rate_window(5, SCRAPE_INTERVAL)
    ((_legend, expr),) = panel_queries(panel_get("requests"), monitoring_scope(env), window_seconds=window)
    assert expr in monitored.queries()

    # The error ratio sees the 500s; the latency quantiles come from the histogram.
    errors = client.get(URL, {"panel": "errors", "start": end - 300, "end": end}).json()
    ratios = [v for s in errors["series"] for _ts, v in s["values"] if v is not None]
    assert ratios and 0 < max(ratios) < 1
    latency = client.get(URL, {"panel": "latency", "start": end - 300, "end": end}).json()
    assert [s["name"] for s in latency["series"]] == ["p50", "p95", "p99"]
    # Default range: the last hour, about 240 points.
    default = client.get(URL, {"panel": "requests"}).json()
    assert default["end"] - default["start"] == pytest.approx(3600)
    assert default["step"] == 15


@pytest.mark.django_db
def test_an_outsider_and_an_unknown_environment_get_404(client, people, env, monitored):
    client.force_login(people.outsider)
    for query in ({}, {"panel": "requests"}, {"panel": "nope", "step": "x"}):
        response = client.get(URL, query)
        assert response.status_code == 404, query
        _error_shape(response)
    client.force_login(people.developer)
    assert client.get("/api/projects/orders/environments/staging/metrics/").status_code == 404
    assert client.get("/api/projects/orders/environments/prod/metrics/").status_code == 404  # not there yet
    assert client.get("/api/projects/nobody/environments/test/metrics/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ({"panel": "cpu-by-magic"}, "panel", "No such panel. The panels are: requests, errors"),
        ({"panel": "requests", "start": "200", "end": "100"}, "end", "The end must be after the start"),
        ({"panel": "requests", "start": "100", "end": "100"}, "end", "The end must be after the start"),
        ({"panel": "requests", "start": "0", "end": str(32 * 86400)}, "start", "at most 31 days"),
        ({"panel": "requests", "step": "1"}, "step", "at least 5 seconds"),
        ({"panel": "requests", "start": "0", "end": "86400", "step": "5"}, "step", "Too many points"),
        ({"panel": "requests", "start": "yesterday"}, "start", "valid number"),
        ({"panel": "requests", "end": "nan"}, "end", "Unix time"),
        ({"panel": "requests", "end": "1e300"}, "end", "Unix time"),
        ({"panel": "requests", "step": "inf"}, "step", "at least 5 seconds"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong(client, people, env, monitored, query, field, says):
    client.force_login(people.viewer)
    before = len(monitored.queries())
    response = client.get(URL, query)
    assert response.status_code == 400, response.content
    body = _error_shape(response)
    assert says in " ".join(body["errors"][field]), body
    assert len(monitored.queries()) == before  # refused before any query


@pytest.mark.django_db
def test_a_label_value_breaking_out_of_its_string_does_not_change_the_query(
    client, people, env, monitored, burst
):
    # Project names are DNS labels, so the portal never makes this one; written straight to the table it
    # stands for any label value reaching a template.
    evil = Project.objects.create(name=EVIL, owner=people.owner, language="go")
    ProjectMember.objects.create(project=evil, user=people.developer, role="developer")
    environment = _environment(evil, _cluster("unreachable-evil"), "evil-test")
    client.force_login(people.developer)
    before = len(monitored.queries())
    response = client.get(
        f"/api/projects/{quote(EVIL, safe='')}/environments/test/metrics/", {"panel": "requests"}
    )
    assert response.status_code == 200, response.content
    # Prometheus holds orders' and payroll's series, and `up` for both: none of them comes back.
    assert response.json()["series"] == []
    sent = monitored.queries()[before:]
    assert sent, "the panel asked Prometheus nothing"
    escaped = 'project="orders\\"} or up{"'
    for expr in sent:
        assert escaped in expr
        assert 'project="orders"}' not in expr  # the quote never closes the string
    window = rate_window(15, SCRAPE_INTERVAL)
    ((_legend, expected),) = panel_queries(
        panel_get("requests"), monitoring_scope(environment), window_seconds=window
    )
    assert sent == [expected]
    # The same panel of the real project does find series: the empty answer above is the escaping's doing.
    assert client.get(URL, {"panel": "requests"}).json()["series"]


@pytest.mark.django_db
def test_prometheus_down_is_a_502_with_a_message_never_a_500(client, people, env, settings):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{closed}"
    client.force_login(people.viewer)
    response = client.get(URL, {"panel": "requests"})
    assert response.status_code == 502
    body = _error_shape(response)
    assert "Prometheus" in body["detail"]
    assert client.get(URL).status_code == 200  # the list needs no Prometheus


@pytest.mark.django_db
def test_with_monitoring_off_a_panel_is_an_empty_documented_answer(client, people, env, settings):
    settings.PROMETHEUS_URL = ""
    _record(people, version="2026.11.30-1", finished_at=timezone.now() - timedelta(minutes=5))
    client.force_login(people.viewer)
    assert client.get(URL).json()["enabled"] is False
    body = client.get(URL, {"panel": "memory"}).json()
    assert body["enabled"] is False and body["series"] == [] and body["unit"] == "bytes"
    assert [m["label"] for m in body["markers"]] == ["Release 2026.11.30-1"]


@pytest.mark.django_db
def test_release_and_rollback_markers_in_range_link_to_their_release(client, people, env, monitored):
    now = timezone.now()
    release = _record(people, version="2026.11.30-2", finished_at=now - timedelta(minutes=20))
    rollback = _record(
        people,
        version="2026.11.30-1",
        finished_at=now - timedelta(minutes=10),
        kind="rollback",
        outcome="failed",
    )
    _record(people, version="2026.11.28-1", finished_at=now - timedelta(days=2))  # out of range
    client.force_login(people.viewer)
    body = client.get(URL, {"panel": "restarts"}).json()
    assert body["markers"] == [
        {
            "at": release.finished_at.timestamp(),
            "kind": "release",
            "outcome": "succeeded",
            "label": "Release 2026.11.30-2",
            "url": f"/projects/orders/releases/{release.release_id}/",
        },
        {
            "at": rollback.finished_at.timestamp(),
            "kind": "rollback",
            "outcome": "failed",
            "label": "Rollback 2026.11.30-1 (Failed)",
            "url": f"/projects/orders/releases/{rollback.release_id}/",
        },
    ]
    # Another range, other markers.
    old = client.get(
        URL,
        {
            "panel": "restarts",
            "start": (now - timedelta(days=3)).timestamp(),
            "end": (now - timedelta(days=1)).timestamp(),
        },
    ).json()
    assert [m["label"] for m in old["markers"]] == ["Release 2026.11.28-1"]


# --- the page --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_renders_the_panels_without_calling_prometheus(client, people, env, settings):
    # A Prometheus that accepts connections and never answers: a call while rendering would hang for
    # the client's timeout and show up as an accepted connection.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.setblocking(False)
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        client.force_login(people.developer)
        started = time.monotonic()
        response = client.get("/projects/orders/env/test/")
        elapsed = time.monotonic() - started
        with pytest.raises(BlockingIOError):
            silent.accept()  # nobody connected
    finally:
        silent.close()
    assert response.status_code == 200
    assert elapsed < 2.0, elapsed
    html = response.content.decode()
    for panel in PANELS:
        assert f'id="panel-{panel.id}" data-panel="{panel.id}"' in html
    assert 'data-metrics-url="/api/projects/orders/environments/test/metrics/"' in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "vendor/uplot/uPlot.min.css" in html
    assert "js/monitoring.js" in html

    settings.PROMETHEUS_URL = ""
    off = client.get("/projects/orders/env/test/").content.decode()
    assert 'id="monitoring-off"' in off and 'id="panel-requests"' not in off


# --- in Chromium -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne_monitored(django_db_setup, prometheus, tmp_path_factory):
    """Daphne as daphne_server starts it, reading the test's Prometheus."""
    with running_daphne(
        tmp_path_factory.mktemp("daphne-monitoring"),
        PROMETHEUS_URL=prometheus.url,
        PROMETHEUS_SCRAPE_INTERVAL=str(SCRAPE_INTERVAL),
    ) as url:
        yield url


# Pixels near the first palette colour (#0d6efd) on the requests panel's canvas: the line of its first series
# (markers and axes have other colours).
_SERIES_PIXELS = """() => {
  const canvas = document.querySelector('#panel-requests canvas');
  if (!canvas) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    const near = Math.abs(data[i] - 13) + Math.abs(data[i + 1] - 110) + Math.abs(data[i + 2] - 253) < 60;
    if (near && data[i + 3] > 200) count++;
  }
  return count;
}"""


@pytest.mark.browser
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_requests_panel_draws_the_burst_in_chromium(people, chromium, daphne_monitored, burst):
    env = _environment(people.project, _cluster("unreachable-browser"), "orders-test")
    _record(people, version="2026.11.30-3", finished_at=timezone.now() - timedelta(minutes=2))
    page = sign_in(chromium, daphne_monitored, people.developer.username)
    csp = CspWatch(page)
    page.goto(f"{daphne_monitored}/projects/orders/env/{env.environment}/")
    page.wait_for_selector("#panel-requests[data-state=drawn]")
    assert int(page.get_attribute("#panel-requests", "data-series")) >= 1
    assert page.get_attribute("#monitoring", "data-live") == "true"
    # Other panels: drawn, empty (no kube-state-metrics here) or an error message, never stuck loading.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.monitoring-panel')].every(p => p.dataset.state !== 'pending')"
    )
    assert page.get_attribute("#panel-cpu", "data-state") == "empty"
    assert "No data in this range." in page.inner_text("#panel-cpu")
    # The last 15 minutes: this Prometheus is a minute old, so the burst takes a visible part of the width.
    with page.expect_response(lambda r: "panel=requests" in r.url):
        page.click('#monitoring-range [data-range="900"]')
    page.wait_for_selector("#panel-requests[data-state=drawn]")
    assert page.get_attribute('#monitoring-range [data-range="900"]', "aria-pressed") == "true"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "environment-monitoring-panels.png"
    page.locator("#monitoring").screenshot(path=str(shot))
    assert shot.stat().st_size > 1000
    # The line is on the canvas, not only the axes (a fresh Prometheus: its samples sit at the right edge).
    page.wait_for_function(f"() => ({_SERIES_PIXELS})() > 0")
    # The legend names the codes and, under the cursor, gives the value in the panel's unit.
    assert "200" in page.inner_text("#panel-requests .u-legend")
    over = page.locator("#panel-requests .u-over")
    box = over.bounding_box()
    over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})
    page.wait_for_function(
        "() => document.querySelector('#panel-requests .u-legend').innerText.includes('req/s')"
    )
    # The release is a marker with a link to its page.
    marker = page.locator("#monitoring-markers a.marker-release")
    assert "Release 2026.11.30-3" in marker.inner_text()
    assert marker.get_attribute("href").startswith("/projects/orders/releases/")
    # Live: the panels are fetched again within ~15 s, without a reload.
    with page.expect_response(lambda r: "panel=requests" in r.url, timeout=25_000):
        pass
    assert csp.violations() == []
    page.context.close()


@pytest.mark.django_db
def test_the_panels_and_their_messages_speak_chinese(client, people, env, settings):
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    client.force_login(people.viewer)
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}
    page = client.get("/projects/orders/env/test/", **zh).content.decode()
    assert "监控" in page and "按状态码的每秒请求数" in page and "15 分钟" in page
    response = client.get(URL, {"panel": "requests", "step": "1"}, **zh)
    assert response.json()["errors"]["step"] == ["步长至少为 5 秒。"]
