"""A worker killed in the middle of a build: the retried step finds the build the dead worker started
(by its run marker) instead of starting a second one, and the polls that follow it append its console
once, whichever process runs them.

The workers here are real `celery worker` processes with the pipeline's settings, on a queue of this
test's own (the session's worker does not know the stand-ins)."""

import os
import signal
import time

import pytest
from django.conf import settings

from deploys.choices import ReleaseStatus
from deploys.models import BuildRecipe, Release
from deploys.services import release_version
from deploys.tasks import release_build
from integrations.gitlab import GitLabClient
from opsportal.celery import app
from sandbox.procs import stop
from tests.fixtures.pipeline import run_release_task
from tests.fixtures.services import start_celery_worker
from tests.polling import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]


@pytest.fixture
def pipeline_workers(onboarded, tmp_path, monkeypatch):
    """Starts workers with the pipeline's settings on a private queue, where this process sends too."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (run through sandbox.testenv)")
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-crash-{os.getpid()}"
    # The settings' namespaced key is the one Celery reads (a plain task_default_queue is shadowed).
    monkeypatch.setitem(app.conf, "CELERY_TASK_DEFAULT_QUEUE", queue)
    started = []

    def start(name: str):
        env = {**onboarded.pipeline.settings(), "INTEGRATION_RETRY_BACKOFF_SECONDS": "0"}
        started.append(start_celery_worker(tmp_path / f"{name}.log", queue=queue, env=env))
        return started[-1]

    yield start
    for proc in started:
        stop(proc)


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
