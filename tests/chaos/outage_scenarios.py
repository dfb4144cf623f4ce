"""Run by tests/chaos/test_outages.py in a pytest session of its own, against private PostgreSQL and Redis
servers (CHAOS_* variables): not collected by the main session (the file name has no test_ prefix).

Releases go through a real worker with beat inside it. Mid-release, Redis restarts (without persistence:
every queued message is lost), PostgreSQL restarts (every session is cut), and the apiserver restarts.
Each release ends, deployed or failed with a cause, within two minutes of the recovery, with no
duplicated tag, build or deployment record, and rollback works afterwards."""

import time

import pytest
from django.db import connection

from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, Release
from sandbox.procs import stop
from tests.chaos.helpers import FAST_RUNS, assert_no_duplicates, builds_of
from tests.chaos.servers import PrivateServers
from tests.helpers.releases import hold_rollouts, running_image, status, wait_until_ended
from tests.polling import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]


def restart_apiserver(kube_cluster, downtime: float) -> None:
    """Stop the control plane's apiserver and start it again on the same port (LocalCluster keeps no
    public handle on one component, so this reaches into its process list)."""
    cluster = kube_cluster.cluster
    with cluster._lock:
        apiserver = next(proc for proc in cluster._procs if proc.name == "kube-apiserver")
        cluster._procs.remove(apiserver)
    stop(apiserver.popen)
    time.sleep(downtime)
    cluster._start_apiserver(time.monotonic() + 120)


def _ended_with_cause(release: Release) -> None:
    release.refresh_from_db()
    assert release.status in (ReleaseStatus.DEPLOYED, ReleaseStatus.FAILED)
    if release.status == ReleaseStatus.FAILED:
        assert release.error, "a failed release says why"


def test_redis_postgres_and_apiserver_restarts(people, onboarded, pipeline_workers, kube_cluster, settings):
    for key, value in FAST_RUNS.items():
        setattr(settings, key, int(value))
    servers = PrivateServers.from_env()
    project = onboarded.project
    timings = {}
    pipeline_workers("worker", env=FAST_RUNS, beat=True)

    good = services.release_submit(actor=people.developer, project=project, branch="main")
    wait_until_ended(good, since=time.monotonic(), timeout=300)
    assert good.status == ReleaseStatus.DEPLOYED, good.error

    # Redis, while the release builds: the queued polls and retries vanish with it.
    release = services.release_submit(actor=people.developer, project=project, branch="main")
    until("the build to start", lambda: builds_of(onboarded, release), timeout=120)
    servers.restart("redis", downtime=3)
    timings["redis"] = wait_until_ended(release, since=time.monotonic())
    _ended_with_cause(release)
    assert_no_duplicates(onboarded, release)

    # PostgreSQL, while the release builds: every session (the worker's, the heartbeat's) is cut.
    release = services.release_submit(actor=people.developer, project=project, branch="main")
    until("the build to start", lambda: builds_of(onboarded, release), timeout=120)
    servers.restart("postgres", downtime=3)
    connection.close()  # this test's own session was cut too
    timings["postgres"] = wait_until_ended(release, since=time.monotonic())
    _ended_with_cause(release)
    assert_no_duplicates(onboarded, release)

    # The apiserver, while the release deploys (its rollout held open so that it is seen deploying).
    hold_rollouts(onboarded, "test", 15)
    release = services.release_submit(actor=people.developer, project=project, branch="main")
    until("the release to deploy", lambda: status(release) == ReleaseStatus.DEPLOYING, timeout=240)
    restart_apiserver(kube_cluster, downtime=5)
    timings["apiserver"] = wait_until_ended(release, since=time.monotonic())
    _ended_with_cause(release)
    assert_no_duplicates(onboarded, release)
    hold_rollouts(onboarded, "test", 0)

    # Rollback works afterwards, through the worker.
    target = DeploymentRecord.objects.get(release=good)
    rollback = services.release_rollback(
        actor=people.developer, project=project, environment="test", record_id=target.pk
    )
    until("the rollback to end", lambda: _outcome(rollback) != DeploymentOutcome.RUNNING, timeout=120)
    assert rollback.outcome == DeploymentOutcome.SUCCEEDED, rollback.message
    assert running_image(onboarded, "test")[0] == good.image
    outcomes = {r.version: r.status for r in Release.objects.filter(project=project)}
    print("outage timings (s):", {k: round(v, 1) for k, v in timings.items()}, outcomes)


def _outcome(record: DeploymentRecord) -> str:
    record.refresh_from_db()
    return record.outcome
