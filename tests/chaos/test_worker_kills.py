"""Chaos: a real release through a real worker (with beat inside it, so the sweepers run as in
production), the worker SIGKILLed while tagging, building and deploying, a fresh worker started each
time. The release is resumed from its step every time and ends deployed within two minutes of the last
recovery; no tag, build or deployment record is duplicated; rollback works afterwards.

There are no pool children to kill: the worker runs the threads pool (docker-compose.yml) or solo (here),
so "kill the pool" is killing the worker (see docs/architecture.md)."""

import time

import pytest

from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord
from observability.models import AuditEvent
from tests.chaos.helpers import (
    FAST_RUNS,
    assert_no_duplicates,
    builds_of,
)
from tests.helpers.releases import (
    RECOVERY_LIMIT,
    hold_rollouts,
    kill,
    running_image,
    status,
    wait_until_ended,
)
from tests.polling import until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.kube,
    pytest.mark.standins,
    pytest.mark.chaos,
]


def test_worker_killed_at_tagging_building_and_deploying(people, onboarded, pipeline_workers, settings):
    for key, value in FAST_RUNS.items():
        setattr(settings, key, int(value))
    project, gitlab = onboarded.project, onboarded.pipeline.gitlab
    timings = {}

    # The happy path through broker and worker: the release everything later rolls back to.
    worker = pipeline_workers("happy", env=FAST_RUNS, beat=True)
    started = time.monotonic()
    good = services.release_submit(actor=people.developer, project=project, branch="main")
    timings["happy release"] = wait_until_ended(good, since=started, timeout=300)
    assert good.status == ReleaseStatus.DEPLOYED, good.error

    # Tagging: GitLab asks to come back in 10 s; the worker takes the retry (an ETA message it holds
    # unacknowledged until due) and dies with it in hand.
    gitlab.inject_fault(r"/repository/tags", status=503, count=1, method="POST", retry_after=10)
    tags_before = gitlab.request_count(r"/repository/tags", "POST")
    release = services.release_submit(actor=people.developer, project=project, branch="main")
    until(
        "the tag request to be refused",
        lambda: gitlab.request_count(r"/repository/tags", "POST") > tags_before,
        timeout=60,
    )
    time.sleep(2)  # the worker fetches the retry's message
    assert status(release) == ReleaseStatus.TAGGING
    kill(worker)
    worker = pipeline_workers("after-tagging", env=FAST_RUNS, beat=True)
    until(
        "the release to be tagged", lambda: status(release) != ReleaseStatus.TAGGING, timeout=RECOVERY_LIMIT
    )

    # Building: killed once Jenkins runs the build; its polls die with it.
    until("the build to start", lambda: builds_of(onboarded, release), timeout=120)
    kill(worker)
    worker = pipeline_workers("after-building", env=FAST_RUNS, beat=True)

    # Deploying: killed as soon as the deploy step has claimed the release (its rollout held open, so
    # that a fast build cannot carry the release past deploying unseen).
    hold_rollouts(onboarded, "test", 15)
    until("the release to deploy", lambda: status(release) == ReleaseStatus.DEPLOYING, timeout=240)
    kill(worker)
    pipeline_workers("after-deploying", env=FAST_RUNS, beat=True)
    recovered = time.monotonic()
    timings["deployed after the last kill"] = wait_until_ended(release, since=recovered)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    assert_no_duplicates(onboarded, release)
    resumed = AuditEvent.objects.filter(verb="release.resume", target_id=str(release.pk))
    resumed_in = {changes["status"] for changes in resumed.values_list("changes", flat=True)}
    assert resumed_in == {ReleaseStatus.TAGGING, ReleaseStatus.BUILDING, ReleaseStatus.DEPLOYING}
    assert DeploymentRecord.objects.get(release=release).outcome == DeploymentOutcome.SUCCEEDED
    hold_rollouts(onboarded, "test", 0)

    # Rollback afterwards, through the worker.
    target = DeploymentRecord.objects.get(release=good)
    rollback = services.release_rollback(
        actor=people.developer, project=project, environment="test", record_id=target.pk
    )
    until("the rollback to succeed", lambda: _outcome(rollback) == DeploymentOutcome.SUCCEEDED, timeout=120)
    assert running_image(onboarded, "test")[0] == good.image
    print("chaos timings (s):", {k: round(v, 1) for k, v in timings.items()})


def _outcome(record: DeploymentRecord) -> str:
    record.refresh_from_db()
    assert record.outcome != DeploymentOutcome.FAILED, record.message
    return record.outcome
