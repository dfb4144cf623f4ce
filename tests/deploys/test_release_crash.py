"""A worker killed in the middle of a build: the retried step finds the build the dead worker started
(by its run marker) instead of starting a second one, and the polls that follow it append its console
once, whichever process runs them.

The workers here are real `celery worker` processes with the pipeline's settings, on a queue of this
test's own (the session's worker does not know the stand-ins)."""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import BuildRecipe, DeploymentRecord, Release
from deploys.services import release_version, releases_resume_stale
from deploys.tasks import release_build
from integrations.gitlab import GitLabClient
from observability.models import AuditEvent
from tests.fixtures.pipeline import run_release_task
from tests.helpers.releases import git_tags, hold_rollouts, kill, running_image, status
from tests.polling import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]


def test_killed_build_step_is_retried_without_a_second_build(people, onboarded, pipeline_workers):
    project = onboarded.project
    version = release_version(user=people.developer)
    gitlab = GitLabClient(settings.GITLAB_URL, settings.GITLAB_TOKEN)
    sha = gitlab.branch(project.gitlab_repository, "main").commit_sha
    gitlab.ensure_tag(project.gitlab_repository, version, sha, expected_sha=sha)
    release = Release.objects.create(
        project=project,
        environment="test",
        created_by=people.developer,
        branch="main",
        commit_sha=sha,
        version=version,
        status=ReleaseStatus.BUILDING,
        recipe=BuildRecipe.objects.filter(language="go").first(),
        image_repository=f"{settings.REGISTRY_HOST}/{project.name}",
        jenkins_job=project.name,
    )
    jobs = onboarded.pipeline.jenkins.jobs
    builds_before = len(jobs[project.name].builds) if project.name in jobs else 0

    worker = pipeline_workers("killed")
    release_build.delay(release_id=release.pk, run_token=str(release.run_token))
    deadline = time.monotonic() + 60
    while not (project.name in jobs and len(jobs[project.name].builds) > builds_before):
        assert worker.poll() is None, "the worker died before its build started"
        assert time.monotonic() < deadline, "the killed step never started a build"
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-build
    worker.wait()

    release.refresh_from_db()
    assert release.status == ReleaseStatus.BUILDING, release.error
    # The dead worker's messages are lost with it (until the broker's visibility timeout): the step is
    # run again, here, while a fresh worker takes the polls and steps this run queues.
    pipeline_workers("fresh")
    release = run_release_task(release_build, release)
    assert release.status in (ReleaseStatus.BUILT, ReleaseStatus.DEPLOYING, ReleaseStatus.DEPLOYED), (
        release.error
    )
    assert len(jobs[project.name].builds) == builds_before + 1
    assert release.jenkins_build == max(jobs[project.name].builds)
    assert release.image_digest.startswith("sha256:")
    # Polled by the dead worker, the fresh one and this test, the console still has each line once.
    assert release.console.splitlines().count("==> Compiling") == 1
    # The finished step queued the next one; the real worker deploys the image.
    until("the worker to deploy the release", lambda: _deployed(release), timeout=60)


def _deployed(release: Release) -> bool:
    release.refresh_from_db()
    assert release.status not in (ReleaseStatus.FAILED, ReleaseStatus.CANCELLED), release.error
    return release.status == ReleaseStatus.DEPLOYED


# The heartbeat and sweep, shortened so the test sees a killed worker noticed in seconds, not a minute.
FAST_RUNS = {"RUN_HEARTBEAT_SECONDS": "1", "RUN_STALE_SECONDS": "4"}


def _resume_when_stale(release: Release) -> tuple[int, int]:
    """Run the sweeper (beat's job) until it acts on the silent release."""
    return until(
        "the sweeper to notice the silent release",
        lambda: releases_resume_stale() if _stale(release) else None,
        timeout=30,
    )


def _stale(release: Release) -> bool:
    release.refresh_from_db()
    return release.heartbeat_at < timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)


def test_killed_workers_are_resumed_or_reconciled_without_duplicates(
    people, onboarded, pipeline_workers, kube_cluster, settings
):
    for key, value in FAST_RUNS.items():
        setattr(settings, key, int(value))
    project, jobs = onboarded.project, onboarded.pipeline.jenkins.jobs
    builds_before = len(jobs[project.name].builds) if project.name in jobs else 0

    # 1. Killed while deploying, and not resumable (RUN_MAX_RESUMES=0): the cluster did roll the digest
    #    out, so the release is reconciled to deployed instead of failed.
    # The rollout stays open long enough to be seen deploying and killed, however fast the build was.
    hold_rollouts(onboarded, "test", 20)
    worker = pipeline_workers("first", env=FAST_RUNS)
    first = services.release_submit(actor=people.developer, project=project, branch="main")
    until("the first release to build", lambda: status(first) == ReleaseStatus.BUILDING, timeout=60)
    # A live build's heartbeat is its polls: a sweep past RUN_STALE_SECONDS leaves it alone.
    time.sleep(settings.RUN_STALE_SECONDS + 1)
    if status(first) == ReleaseStatus.BUILDING:
        assert releases_resume_stale() == (0, 0)
    until("the first release to deploy", lambda: status(first) == ReleaseStatus.DEPLOYING, timeout=240)
    until("the image to be set", lambda: running_image(onboarded, "test")[0] == first.image, timeout=60)
    kill(worker)  # mid-rollout
    until(
        "the Deployment to run the first release's digest",
        lambda: running_image(onboarded, "test") == (first.image, True),
        timeout=120,
    )
    settings.RUN_MAX_RESUMES = 0
    assert _resume_when_stale(first) == (0, 1)
    first.refresh_from_db()
    assert first.status == ReleaseStatus.DEPLOYED, first.error
    assert AuditEvent.objects.filter(verb="release.deploy.reconciled", target_id=str(first.pk)).exists()
    record = DeploymentRecord.objects.get(release=first)
    assert record.outcome == DeploymentOutcome.SUCCEEDED
    hold_rollouts(onboarded, "test", 0)

    # 2. Killed while building: resumed from its step by a fresh worker, one build, one record.
    settings.RUN_MAX_RESUMES = 3
    worker = pipeline_workers("second", env=FAST_RUNS)
    second = services.release_submit(actor=people.developer, project=project, branch="main")
    until("a build to start", lambda: len(jobs[project.name].builds) == builds_before + 2, timeout=120)
    kill(worker)
    assert status(second) == ReleaseStatus.BUILDING, second.error
    pipeline_workers("fresh", env=FAST_RUNS)
    assert _resume_when_stale(second) == (1, 0)
    until("the resumed release to deploy", lambda: _deployed(second), timeout=240)
    assert second.resumes == 0 and AuditEvent.objects.filter(verb="release.resume").count() == 1
    assert len(jobs[project.name].builds) == builds_before + 2  # one build per release
    assert DeploymentRecord.objects.filter(release=second).count() == 1
    assert git_tags(onboarded).count(second.version) == 1

    # 3. Rollback works afterwards, through the real worker.
    rollback = services.release_rollback(
        actor=people.developer, project=project, environment="test", record_id=record.pk
    )
    until("the rollback", lambda: _outcome(rollback) == DeploymentOutcome.SUCCEEDED, timeout=120)
    assert running_image(onboarded, "test")[0] == first.image


def _outcome(record: DeploymentRecord) -> str:
    record.refresh_from_db()
    assert record.outcome != DeploymentOutcome.FAILED, record.message
    return record.outcome
