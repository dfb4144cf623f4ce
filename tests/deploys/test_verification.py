"""Post-release verification against a real Prometheus scraping real go-hello processes on 127.0.0.1.

One scenario runs for the module: four services (the label ``project`` of each is a project below), each
served by version A, then "rolled out" to version B (B started, traffic moved to it, A stopped):
- ``good-svc``: A and B clean;
- ``orders``: B answers 30% of its requests with 500 (ERROR_RATIO=0.3);
- ``slow-svc``: B takes 300 ms more per request (EXTRA_LATENCY_MS=300);
- ``quiet-svc``: nobody sends it a request (only the scrapes reach it).
The scenario gives the rollout's start and end times; the tests drive the verification service with
releases whose rollout records carry those times, and the check run at explicit times after the window.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import requests
import yaml
from django.db import transaction
from django.utils import timezone

from deploys.choices import DeploymentKind, DeploymentOutcome, ReleaseStatus, VerificationStatus
from deploys.models import DeploymentRecord, Release
from deploys.services import verification
from deploys.tasks import verify_release
from integrations.prometheus.client import PrometheusClient
from observability.models import AuditEvent, LiveEvent
from opsportal.notices import Notice, NoticeKind
from projects.models import Project
from sandbox.procs import stop
from tests.helpers.demo_processes import build_go_hello, start
from tests.polling import until

WINDOW = 10  # seconds: the verification window of every project here
SCRAPE = 1  # seconds between scrapes in this module's Prometheus configuration
SERVICES = {
    "good-svc": {},
    "orders": {"ERROR_RATIO": "0.3"},
    "slow-svc": {"EXTRA_LATENCY_MS": "300"},
    "quiet-svc": {},
}
QUIET = {"quiet-svc"}


@dataclass(frozen=True)
class Scenario:
    prometheus_url: str
    rollout_started: datetime
    rollout_ended: datetime


class Traffic:
    """One thread per service sends GET / to whichever version serves it now."""

    def __init__(self) -> None:
        self.targets: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, name: str) -> None:
        thread = threading.Thread(target=self._loop, args=(name,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _loop(self, name: str) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    session.get(self.targets[name] + "/", timeout=5)
                except requests.RequestException:
                    pass  # the moment of the switch
                self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _scrape_config(ports: dict[str, list[int]]) -> dict:
    return {
        "global": {"scrape_interval": f"{SCRAPE}s", "evaluation_interval": f"{SCRAPE}s"},
        "scrape_configs": [
            {
                "job_name": "verification",
                "scrape_interval": f"{SCRAPE}s",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{port}" for port in ports[name]],
                        "labels": {"project": name, "env": "test"},
                    }
                    for name in ports
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def go_hello_binary(tmp_path_factory):
    return build_go_hello(tmp_path_factory)


@pytest.fixture(scope="module")
def scenario(prometheus_server, go_hello_binary, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verification")
    client = PrometheusClient(prometheus_server.url)
    before = prometheus_server.config_file.read_text()
    procs = []
    traffic = Traffic()
    try:
        old = {}
        for name in SERVICES:
            service = start([str(go_hello_binary)], tmp, {"APP_VERSION": "A"}, name=f"{name}-a")
            procs.append(service.proc)
            old[name] = service
        ports = {name: [old[name].port] for name in SERVICES}
        prometheus_server.config_file.write_text(yaml.safe_dump(_scrape_config(ports)))
        client.reload()
        for name in SERVICES:
            traffic.targets[name] = old[name].url
            if name not in QUIET:
                traffic.start(name)
        # The baseline: version A serving for a whole window, after its series exist.
        until(
            "Prometheus to scrape version A",
            lambda: len(client.query('up{job="verification"} == 1')) == len(SERVICES),
            timeout=30,
        )
        time.sleep(WINDOW + 2 * SCRAPE)
        # The rollout: version B starts (and is scraped, as a new pod is), takes the traffic, A stops.
        rollout_started = timezone.now()
        new = {}
        for name, faults in SERVICES.items():
            new[name] = start([str(go_hello_binary)], tmp, {"APP_VERSION": "B", **faults}, name=f"{name}-b")
            procs.append(new[name].proc)
            ports[name].append(new[name].port)
        prometheus_server.config_file.write_text(yaml.safe_dump(_scrape_config(ports)))
        client.reload()
        for name in SERVICES:
            traffic.targets[name] = new[name].url
            stop(old[name].proc)
        rollout_ended = timezone.now()
        time.sleep(WINDOW + 2 * SCRAPE)
        yield Scenario(prometheus_server.url, rollout_started, rollout_ended)
    finally:
        traffic.stop()
        for proc in procs:
            stop(proc)
        prometheus_server.config_file.write_text(before)
        client.reload()


# --- helpers ------------------------------------------------------------------------------------------------


def _cells(callback) -> dict:
    return dict(
        zip(callback.__code__.co_freevars, (c.cell_contents for c in callback.__closure__ or ()), strict=True)
    )


def queued_tasks(callbacks) -> list[tuple[str, dict]]:
    """The tasks ``opsportal.runs.queue`` sent on commit: (task name, kwargs with the countdown)."""
    found = []
    for callback in callbacks:
        cells = _cells(callback)
        if "task" in cells and "kwargs" in cells:
            found.append((cells["task"].name, {**cells["kwargs"], "countdown": cells.get("countdown")}))
    return found


def notices(callbacks) -> list[Notice]:
    return [_cells(c)["notice"] for c in callbacks if "notice" in _cells(c)]


IMAGE = "registry.local/{name}@sha256:{digit}"


def deployed_release(people, name: str, *, started: datetime, ended: datetime, auto_rollback: bool = False):
    """A project whose version v1 ran, and whose release v2 is rolling out over [started, ended]; the
    release is left deploying, for the test to end it as the deploy step does."""
    project = (
        people.project
        if name == people.project.name
        else Project.objects.create(name=name, owner=people.owner, language="go")
    )
    Project.objects.filter(pk=project.pk).update(
        verification_window_seconds=WINDOW, verification_min_requests=20, auto_rollback=auto_rollback
    )
    project.refresh_from_db()
    common = {"project": project, "environment": "test", "created_by": people.developer}
    previous = Release.objects.create(
        **common,
        version="v1",
        status=ReleaseStatus.DEPLOYED,
        image_repository=f"registry.local/{name}",
        image_digest="sha256:" + "a" * 64,
    )
    earlier = DeploymentRecord.objects.create(
        project=project,
        environment="test",
        kind=DeploymentKind.RELEASE,
        release=previous,
        image=previous.image,
        outcome=DeploymentOutcome.SUCCEEDED,
        actor=people.developer,
    )
    DeploymentRecord.objects.filter(pk=earlier.pk).update(created_at=started - timedelta(hours=1))
    release = Release.objects.create(
        **common,
        version="v2",
        status=ReleaseStatus.DEPLOYING,
        image_repository=f"registry.local/{name}",
        image_digest="sha256:" + "b" * 64,
        started_at=started,
    )
    rollout = DeploymentRecord.objects.create(
        project=project,
        environment="test",
        kind=DeploymentKind.RELEASE,
        release=release,
        image=release.image,
        previous_image=previous.image,
        outcome=DeploymentOutcome.SUCCEEDED,
        actor=people.developer,
    )
    DeploymentRecord.objects.filter(pk=rollout.pk).update(created_at=started, finished_at=ended)
    return release, previous


def end_deployed(release: Release, callbacks_fixture) -> list:
    """End the release deployed, as its deploy step does; returns the on-commit callbacks."""
    from opsportal import runs

    with callbacks_fixture(execute=False) as callbacks, transaction.atomic():
        locked = runs.locked(Release, release.pk)
        runs.move(locked, ReleaseStatus.DEPLOYED, actor=None, verb="release.deploy")
    return callbacks


@pytest.fixture
def monitoring(settings, scenario):
    settings.PROMETHEUS_URL = scenario.prometheus_url
    settings.PROMETHEUS_SCRAPE_INTERVAL = SCRAPE
    return scenario


def verify(release: Release, callbacks_fixture, *, now: datetime | None = None) -> tuple[Release, list]:
    with callbacks_fixture(execute=False) as callbacks:
        verification.verification_run(release_id=release.pk, now=now)
    release.refresh_from_db()
    return release, callbacks


def deployed_and_verified(
    people, name: str, scenario: Scenario, callbacks_fixture, *, auto_rollback: bool = False
):
    """The scenario's rollout of ``name`` as a release that ends deployed, then its check after the window.
    Returns (release, the release before it, the check's on-commit callbacks)."""
    release, previous = deployed_release(
        people,
        name,
        started=scenario.rollout_started,
        ended=scenario.rollout_ended,
        auto_rollback=auto_rollback,
    )
    end_deployed(release, callbacks_fixture)
    release, callbacks = verify(release, callbacks_fixture)
    return release, previous, callbacks


# --- the verdicts -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_clean_release_is_verified_with_its_numbers(people, monitoring, django_capture_on_commit_callbacks):
    release, _previous = deployed_release(
        people,
        "good-svc",
        started=monitoring.rollout_started,
        ended=monitoring.rollout_ended,
        auto_rollback=True,
    )
    callbacks = end_deployed(release, django_capture_on_commit_callbacks)
    release.refresh_from_db()
    assert release.verification_status == VerificationStatus.PENDING
    due = monitoring.rollout_ended + timedelta(seconds=WINDOW + 2 * SCRAPE)
    assert release.verification["due"] == due.isoformat()
    assert release.verification["new"] == {
        "start": monitoring.rollout_ended.isoformat(),
        "end": (monitoring.rollout_ended + timedelta(seconds=WINDOW)).isoformat(),
    }
    assert release.verification["baseline"] == {
        "start": (monitoring.rollout_started - timedelta(seconds=WINDOW)).isoformat(),
        "end": monitoring.rollout_started.isoformat(),
    }
    [(name, kwargs)] = [t for t in queued_tasks(callbacks) if t[0] == verify_release.name]
    assert kwargs["release_id"] == release.pk and kwargs["countdown"] >= 0
    assert AuditEvent.objects.filter(verb="release.verification.start", target_id=str(release.pk)).exists()

    # A check that comes before the window has ended queues itself for then, and measures nothing.
    release, callbacks = verify(release, django_capture_on_commit_callbacks, now=due - timedelta(seconds=5))
    assert release.verification_status == VerificationStatus.PENDING
    [(name, kwargs)] = queued_tasks(callbacks)
    assert name == verify_release.name and kwargs["countdown"] == pytest.approx(5)

    release, callbacks = verify(release, django_capture_on_commit_callbacks, now=max(timezone.now(), due))
    assert release.verification_status == VerificationStatus.VERIFIED
    assert release.verified_at is not None
    numbers = release.verification
    assert numbers["new"]["requests"] >= 40 and numbers["baseline"]["requests"] >= 40
    assert numbers["new"]["error_ratio"] == 0 and numbers["baseline"]["error_ratio"] == 0
    assert 0 < numbers["new"]["p95_seconds"] < 0.1
    assert numbers["reasons"] == [] and "rollback" not in numbers
    assert notices(callbacks) == []
    assert not DeploymentRecord.objects.filter(project=release.project, kind=DeploymentKind.ROLLBACK).exists()
    end = AuditEvent.objects.get(verb="release.verification.end", target_id=str(release.pk))
    assert end.changes["status"] == ["pending", "verified"]

    # A second message for the same check changes nothing.
    release, callbacks = verify(release, django_capture_on_commit_callbacks)
    assert release.verification_status == VerificationStatus.VERIFIED
    assert queued_tasks(callbacks) == [] and notices(callbacks) == []
    assert AuditEvent.objects.filter(verb="release.verification.end").count() == 1


@pytest.mark.django_db
def test_a_release_with_30_percent_errors_regresses_notifies_and_rolls_back(
    client, people, monitoring, django_capture_on_commit_callbacks
):
    release, previous, callbacks = deployed_and_verified(
        people, "orders", monitoring, django_capture_on_commit_callbacks, auto_rollback=True
    )
    assert release.verification_status == VerificationStatus.REGRESSED
    numbers = release.verification
    # 3 in every 10 requests to / fail; the scrapes (1 a second, all 200) dilute that a little.
    assert 0.2 < numbers["new"]["error_ratio"] < 0.32
    assert numbers["baseline"]["error_ratio"] == 0
    [reason] = numbers["reasons"]
    assert reason.startswith("error ratio 2") and reason.endswith("vs 0% baseline")

    [notice] = notices(callbacks)
    assert notice.kind == NoticeKind.RELEASE_REGRESSED
    assert (notice.project_id, notice.environment) == (release.project_id, "test")
    assert notice.path == f"/projects/orders/releases/{release.pk}/"
    assert notice.user_ids == (people.developer.pk,)
    assert notice.context["version"] == "v2" and notice.context["reasons"] == [reason]
    assert notice.context["new"]["error_ratio"] == numbers["new"]["error_ratio"]
    assert notice.context["rolled_back"] is True

    rollback = DeploymentRecord.objects.get(project=release.project, kind=DeploymentKind.ROLLBACK)
    assert (rollback.image, rollback.release) == (previous.image, previous)
    assert rollback.message == f"verification: {reason}"
    assert numbers["rollback"] == rollback.message and numbers["rollback_record"] == rollback.pk
    assert ("deploys.tasks.rollback_deploy", {"record_id": rollback.pk, "countdown": None}) in queued_tasks(
        callbacks
    )
    audit = AuditEvent.objects.get(verb="release.rollback.auto", target_id=str(rollback.pk))
    assert audit.changes["reason"] == rollback.message and audit.changes["failed_release"] == release.pk
    # The project's live stream says so (the release page refreshes its status on it).
    event = LiveEvent.objects.filter(stream=f"project.{release.project_id}", type="release-changed").last()
    assert event.payload == {
        "release": release.pk,
        "status": "deployed",
        "environment": "test",
        "verification": "regressed",
    }

    # The page and the API show the verdict with the numbers.
    client.force_login(people.viewer)
    page = client.get(f"/projects/orders/releases/{release.pk}/").content.decode()
    assert 'data-verification="regressed"' in page
    assert f"{round(numbers['new']['error_ratio'] * 100, 2)}%" in page
    assert reason in page and rollback.message in page
    listing = client.get("/projects/orders/releases/").content.decode()
    assert 'data-verification="regressed">Regressed</span>' in listing
    body = client.get(f"/api/projects/orders/releases/{release.pk}/").json()
    assert body["verification_status"] == "regressed"
    assert body["verification"]["new"]["requests"] == round(numbers["new"]["requests"])
    assert body["verification"]["baseline"]["error_ratio"] == 0
    assert body["verification"]["reasons"] == [reason]
    assert body["verification"]["rollback"] == rollback.message


@pytest.mark.django_db
def test_without_auto_rollback_a_regression_is_notified_but_not_rolled_back(
    people, monitoring, django_capture_on_commit_callbacks
):
    release, _previous, callbacks = deployed_and_verified(
        people, "orders", monitoring, django_capture_on_commit_callbacks
    )
    assert release.verification_status == VerificationStatus.REGRESSED
    [notice] = notices(callbacks)
    assert notice.context["rolled_back"] is False
    assert not DeploymentRecord.objects.filter(kind=DeploymentKind.ROLLBACK).exists()
    assert [t for t, _ in queued_tasks(callbacks)] == []
    assert release.status == ReleaseStatus.DEPLOYED


@pytest.mark.django_db
def test_a_slower_release_regresses_on_p95(people, monitoring, django_capture_on_commit_callbacks):
    release, _previous, _callbacks = deployed_and_verified(
        people, "slow-svc", monitoring, django_capture_on_commit_callbacks
    )
    assert release.verification_status == VerificationStatus.REGRESSED
    numbers = release.verification
    assert numbers["new"]["p95_seconds"] > 0.25 and numbers["baseline"]["p95_seconds"] < 0.05
    assert numbers["new"]["error_ratio"] == 0
    [reason] = numbers["reasons"]
    assert reason.startswith("p95 latency ") and reason.endswith("ms baseline")


@pytest.mark.django_db
def test_a_service_nobody_uses_has_not_enough_traffic(people, monitoring, django_capture_on_commit_callbacks):
    release, _previous, callbacks = deployed_and_verified(
        people, "quiet-svc", monitoring, django_capture_on_commit_callbacks, auto_rollback=True
    )
    assert release.verification_status == VerificationStatus.NOT_ENOUGH_TRAFFIC
    # Only the scrapes reached it: about one request a second.
    assert release.verification["new"]["requests"] < 20
    assert notices(callbacks) == []
    assert not DeploymentRecord.objects.filter(kind=DeploymentKind.ROLLBACK).exists()


# --- failures and the sweeper (no scenario needed) ----------------------------------------------------------


class Unavailable:
    """A "Prometheus" on 127.0.0.1 that answers 503, counting the requests; with ``upstream``, only the
    first ``failures`` requests, the later ones being passed on to the real Prometheus there."""

    def __init__(self, *, upstream: str = "", failures: int = 0) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                outer.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if upstream and outer.hits > failures:
                    answer = requests.post(
                        upstream + self.path,
                        data=body,
                        headers={"Content-Type": self.headers["Content-Type"]},
                        timeout=10,
                    )
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(answer.content)
                    return
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"error","errorType":"unavailable","error":"overloaded"}')

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def unavailable_prometheus(settings):
    server = Unavailable()
    settings.PROMETHEUS_URL = server.url
    settings.PROMETHEUS_SCRAPE_INTERVAL = SCRAPE
    yield server
    server.close()


def past_release(people, name: str, django_capture_on_commit_callbacks, **kwargs) -> Release:
    """A release that rolled out an hour ago and ended deployed: its check is long due."""
    ended = timezone.now() - timedelta(hours=1)
    release, _previous = deployed_release(
        people, name, started=ended - timedelta(seconds=30), ended=ended, **kwargs
    )
    end_deployed(release, django_capture_on_commit_callbacks)
    release.refresh_from_db()
    assert release.verification_status == VerificationStatus.PENDING
    return release


@pytest.mark.django_db
def test_prometheus_unavailable_is_retried_then_a_clear_error(
    people, unavailable_prometheus, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATION_MAX_RETRIES = 2
    release = past_release(people, "orders", django_capture_on_commit_callbacks, auto_rollback=True)
    # Applied in this process, as a worker runs it; its retries run at once here.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        verify_release.apply(kwargs={"release_id": release.pk})
    release.refresh_from_db()
    # The first query of each attempt failed: the first attempt and two retries.
    assert unavailable_prometheus.hits == 3
    assert release.verification_status == VerificationStatus.UNAVAILABLE
    error = release.verification["error"]
    assert error.startswith("Prometheus could not be queried: Prometheus could not answer")
    assert "(gave up after 2 retries)" in error
    assert notices(callbacks) == [] and queued_tasks(callbacks) == []
    assert not DeploymentRecord.objects.filter(kind=DeploymentKind.ROLLBACK).exists()
    event = AuditEvent.objects.get(verb="release.verification.end", target_id=str(release.pk))
    assert event.changes["status"] == ["pending", "unavailable"]


@pytest.mark.django_db
def test_monitoring_off_verifies_nothing(people, settings, django_capture_on_commit_callbacks):
    settings.PROMETHEUS_URL = ""
    ended = timezone.now()
    release, _previous = deployed_release(people, "orders", started=ended, ended=ended)
    callbacks = end_deployed(release, django_capture_on_commit_callbacks)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.DEPLOYED
    assert release.verification_status == "" and release.verification == {}
    assert verify_release.name not in [name for name, _ in queued_tasks(callbacks)]


@pytest.mark.django_db
def test_the_sweeper_queues_lost_checks_again_and_abandons_day_old_ones(
    people, unavailable_prometheus, django_capture_on_commit_callbacks
):
    release = past_release(people, "orders", django_capture_on_commit_callbacks)
    due = datetime.fromisoformat(release.verification["due"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert verification.verifications_sweep(now=due + timedelta(seconds=60)) == (0, 0)
        assert verification.verifications_sweep(now=due + timedelta(minutes=11)) == (1, 0)
    assert queued_tasks(callbacks) == [(verify_release.name, {"release_id": release.pk, "countdown": None})]
    assert verification.verifications_sweep(now=due + timedelta(days=2)) == (0, 1)
    release.refresh_from_db()
    assert release.verification_status == VerificationStatus.UNAVAILABLE
    assert "no check ran within a day" in release.verification["error"]
    assert unavailable_prometheus.hits == 0


@pytest.mark.django_db
def test_a_release_rolled_back_during_its_window_is_not_judged(
    people, unavailable_prometheus, django_capture_on_commit_callbacks
):
    release = past_release(people, "orders", django_capture_on_commit_callbacks)
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.ROLLED_BACK)
    release, callbacks = verify(release, django_capture_on_commit_callbacks)
    assert release.verification_status == VerificationStatus.NONE
    assert release.verification["skipped"] == "The release is Rolled back."
    assert unavailable_prometheus.hits == 0
    assert notices(callbacks) == []


@pytest.mark.django_db
def test_a_pending_verification_shows_until_when_on_the_page_and_api(
    client, people, unavailable_prometheus, django_capture_on_commit_callbacks
):
    release = past_release(people, "orders", django_capture_on_commit_callbacks)
    due = datetime.fromisoformat(release.verification["due"])
    client.force_login(people.viewer)
    page = client.get(f"/projects/orders/releases/{release.pk}/").content.decode()
    assert 'data-verification="pending"' in page
    assert f"verifying… until {timezone.localtime(due):%H:%M}" in page
    body = client.get(f"/api/projects/orders/releases/{release.pk}/").json()
    assert body["verification_status"] == "pending"
    assert body["verification"]["label"] == "Verifying"
    assert datetime.fromisoformat(body["verification"]["until"]) == due
    assert body["verification"]["new"] is None and body["verification"]["window_seconds"] == WINDOW
    assert unavailable_prometheus.hits == 0


@pytest.mark.django_db
def test_a_transient_prometheus_error_is_retried_and_the_check_concludes(
    people, monitoring, settings, django_capture_on_commit_callbacks
):
    flaky = Unavailable(upstream=monitoring.prometheus_url, failures=2)
    try:
        settings.PROMETHEUS_URL = flaky.url
        release, _previous = deployed_release(
            people, "good-svc", started=monitoring.rollout_started, ended=monitoring.rollout_ended
        )
        end_deployed(release, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=False):
            verify_release.apply(kwargs={"release_id": release.pk})
    finally:
        flaky.close()
    release.refresh_from_db()
    assert release.verification_status == VerificationStatus.VERIFIED, release.verification
    # Two attempts met a 503 on their first query; the third made all six queries (3 per period).
    assert flaky.hits == 2 + 6
