"""The portal's own /metrics: refused without the monitoring token, served to Prometheus with it, and
adding up what the real Daphne and the real Celery worker record (multiprocess mode, as under
`make run`). A real Debian Prometheus scrapes it."""

import shutil
import time
import uuid
from ipaddress import ip_network
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from opsportal import metrics
from opsportal.celery import app as celery_app
from sandbox.procs import free_port, stop
from tests.fixtures.ci import unavailable
from tests.fixtures.services import start_listening
from tests.helpers.metrics import get_metrics, sample, scrape
from tests.livews import LiveClient
from tests.polling import until

PROMETHEUS = "/usr/bin/prometheus"


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


# --- access -------------------------------------------------------------------------------------------


@pytest.mark.services
def test_metrics_are_refused_without_the_token_and_served_with_it(daphne_server):
    for token in (None, "", "wrong-token", settings.MONITORING_TOKEN + "x"):
        response = get_metrics(daphne_server, token)
        assert response.status_code == 403, token
        assert "monitoring token" in response.text
        assert "opsportal_" not in response.text
    basic_auth = {"Authorization": f"Basic {settings.MONITORING_TOKEN}"}
    basic = requests.get(f"{daphne_server}/metrics", headers=basic_auth, timeout=10)
    assert basic.status_code == 403

    response = get_metrics(daphne_server, settings.MONITORING_TOKEN)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    # The refused requests above are already counted; a labelled family appears once something is recorded.
    assert {
        "opsportal_http_request_duration_seconds",
        "opsportal_terminal_sessions_open",
        "opsportal_celery_queue_depth",
    } <= names
    refused = {"view": "metrics", "method": "GET", "status": "4xx"}
    assert sample(response.text, "opsportal_http_request_duration_seconds_count", **refused) >= 5


@pytest.mark.django_db
def test_metrics_are_off_without_a_token_or_networks(client, settings):
    settings.MONITORING_TOKEN = ""
    settings.MONITORING_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
def test_an_allowed_network_lets_a_scrape_in_without_the_token(client, settings):
    settings.MONITORING_TOKEN = ""
    settings.MONITORING_ALLOWED_NETWORKS = [ip_network("10.0.0.0/8"), ip_network("127.0.0.0/8")]
    response = client.get("/metrics")  # the test client comes from 127.0.0.1
    assert response.status_code == 200
    assert b"opsportal_http_request_duration_seconds" in response.content

    settings.MONITORING_ALLOWED_NETWORKS = [ip_network("10.0.0.0/8"), ip_network("::1/128")]
    assert client.get("/metrics").status_code == 403
    settings.MONITORING_TOKEN = "the-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer the-token").status_code == 200


@pytest.mark.django_db
def test_a_session_opens_nothing(client, people):
    client.force_login(people.ops)
    assert client.get("/metrics").status_code == 403


def test_metrics_are_not_in_the_openapi():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert not [path for path in paths if "metrics" in path.split("/")[1:2]]


# --- what the servers record -------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_page_request_counts_in_its_views_histogram(people, daphne_server):
    cookie = _session_cookie(people.developer)
    labels = {"view": "dashboard", "method": "GET", "status": "2xx"}
    name = "opsportal_http_request_duration_seconds_count"
    before = sample(scrape(daphne_server), name, **labels)
    for _ in range(2):
        assert requests.get(f"{daphne_server}/", cookies={"sessionid": cookie}, timeout=10).status_code == 200
    assert requests.get(f"{daphne_server}/no-such-page-{uuid.uuid4().hex}/", timeout=10).status_code == 404

    text = scrape(daphne_server)
    assert sample(text, name, **labels) == before + 2
    assert sample(text, name, view="unresolved", method="GET", status="4xx") >= 1
    assert "no-such-page" not in text  # a raw path never becomes a label


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_failing_task_in_the_real_worker_counts_a_failure(celery_worker_process, daphne_server):
    task = "observability.tasks.prune_live_events"
    failures = {"task": task, "exception": "TypeError"}
    before = sample(scrape(daphne_server), "opsportal_celery_task_failures_total", **failures)
    durations_before = sample(
        scrape(daphne_server), "opsportal_celery_task_duration_seconds_count", task=task, outcome="FAILURE"
    )
    # An argument the task does not take: it raises in the worker (send_task skips the caller's check).
    celery_app.send_task(task, kwargs={"no_such_argument": 1}, queue=settings.CELERY_TASK_DEFAULT_QUEUE)

    def failed() -> float:
        return sample(scrape(daphne_server), "opsportal_celery_task_failures_total", **failures)

    until("the worker's failure in Daphne's /metrics", lambda: failed() == before + 1, timeout=60)
    durations = sample(
        scrape(daphne_server), "opsportal_celery_task_duration_seconds_count", task=task, outcome="FAILURE"
    )
    assert durations == durations_before + 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_open_websocket_shows_in_the_gauge_until_it_closes(people, daphne_server):
    def open_sockets() -> float:
        return sample(scrape(daphne_server), "opsportal_websockets_open", consumer="live_events")

    before = open_sockets()
    live = LiveClient(daphne_server, _session_cookie(people.developer))
    try:
        until("the socket in the gauge", lambda: open_sockets() == before + 1)
        second = LiveClient(daphne_server, _session_cookie(people.owner))
        until("both sockets in the gauge", lambda: open_sockets() == before + 2)
        second.close()
        until("the closed socket out of the gauge", lambda: open_sockets() == before + 1)
    finally:
        live.close()
    until("no socket left in the gauge", lambda: open_sockets() == before)


@pytest.mark.django_db
def test_queue_depth_counts_the_messages_waiting_in_redis(settings):
    if not settings.REDIS_URL:
        unavailable("Queue depth in Redis needs REDIS_URL (run through sandbox.testenv).")
    queue = f"opsportal-metrics-depth-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    try:
        for _ in range(3):
            celery_app.send_task("observability.tasks.prune_live_events", queue=queue)
        assert sample(metrics.exposition().decode(), "opsportal_celery_queue_depth", queue=queue) == 3
    finally:
        with Connection(settings.CELERY_BROKER_URL) as connection:
            connection.default_channel.queue_purge(queue)
    assert sample(metrics.exposition().decode(), "opsportal_celery_queue_depth", queue=queue) == 0


@pytest.mark.django_db
def test_queue_depth_counts_the_filesystem_brokers_message_files(settings, tmp_path):
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
        "processed_folder": str(tmp_path / "processed"),
    }
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    settings.CELERY_TASK_DEFAULT_QUEUE = "portal"
    with Connection("filesystem://", transport_options=options) as connection:
        for queue, count in (("portal", 2), ("other", 1)):
            with connection.SimpleQueue(queue) as simple:
                for n in range(count):
                    simple.put({"n": n})
    assert sample(metrics.exposition().decode(), "opsportal_celery_queue_depth", queue="portal") == 2


# --- a real Prometheus ---------------------------------------------------------------------------------


@pytest.fixture
def prometheus(daphne_server, tmp_path):
    """Debian's Prometheus on a free loopback port scraping the portal every second, as job "opsportal"
    with the monitoring token and as "opsportal-wrong-token" with another."""
    if not Path(PROMETHEUS).exists() and not shutil.which("prometheus"):
        unavailable(f"{PROMETHEUS} is missing (Debian package `prometheus`; .ci/run installs it).")
    target = daphne_server.removeprefix("http://")
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-monitoring-token")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "opsportal",
                "static_configs": [{"targets": [target]}],
                "authorization": {"type": "Bearer", "credentials": settings.MONITORING_TOKEN},
            },
            {
                "job_name": "opsportal-wrong-token",
                "static_configs": [{"targets": [target]}],
                "authorization": {"type": "Bearer", "credentials_file": str(wrong)},
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = start_listening(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port=port,
        log=tmp_path / "prometheus.log",
        what="Prometheus",
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    # The port opens before the TSDB is loaded; until then the API answers 503 in plain text.
    until("Prometheus ready", lambda: _ready(url), timeout=60)
    yield url
    stop(proc)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def _up(prometheus: str, job: str) -> str | None:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": f'up{{job="{job}"}}'}, timeout=5)
    result = answer.json()["data"]["result"]
    return result[0]["value"][1] if result else None


@pytest.mark.services
def test_prometheus_scrapes_the_portal_with_the_token_and_not_without(prometheus):
    started = time.monotonic()
    until('up{job="opsportal"} == 1', lambda: _up(prometheus, "opsportal") == "1", timeout=30)
    until('up{job="opsportal-wrong-token"} == 0', lambda: _up(prometheus, "opsportal-wrong-token") == "0")
    # The portal's series arrive under the job, read from the scrape that counted as up.
    series = requests.get(
        f"{prometheus}/api/v1/query",
        params={"query": 'count(opsportal_http_request_duration_seconds_count{job="opsportal"})'},
        timeout=5,
    ).json()["data"]["result"]
    assert series and float(series[0]["value"][1]) >= 1
    assert time.monotonic() - started < 60
