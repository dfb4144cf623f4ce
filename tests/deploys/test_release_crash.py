"""A worker killed in the middle of the build step: the retried step finds the build the dead worker
started (by its run marker) instead of starting a second one."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from deploys.choices import ReleaseStatus
from deploys.models import BuildRecipe, Release
from deploys.services import release_version
from deploys.tasks import release_build
from integrations.gitlab import GitLabClient
from tests.fixtures.services import _server_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]


def test_killed_build_step_is_retried_without_a_second_build(people, onboarded, celery_worker_process):
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

    env = {**_server_env(), **onboarded.pipeline.settings(), "INTEGRATION_RETRY_BACKOFF_SECONDS": "0"}
    code = (
        "import django; django.setup(); from deploys.tasks import release_build; "
        f"release_build.apply(kwargs={{'release_id': {release.pk}, 'run_token': '{release.run_token}'}})"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not (project.name in jobs and len(jobs[project.name].builds) > builds_before):
        assert worker.poll() is None, "the step ended before its build started"
        assert time.monotonic() < deadline, "the killed step never started a build"
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-step
    worker.wait()

    release.refresh_from_db()
    assert release.status == ReleaseStatus.BUILDING
    release_build.apply(kwargs={"release_id": release.pk, "run_token": str(release.run_token)})
    release.refresh_from_db()
    assert release.status in (ReleaseStatus.BUILT, ReleaseStatus.DEPLOYING, ReleaseStatus.DEPLOYED), (
        release.error
    )
    assert len(jobs[project.name].builds) == builds_before + 1
    assert release.jenkins_build == max(jobs[project.name].builds)
    assert release.image_digest.startswith("sha256:")
    # The finished step queued the next one; the real worker deploys the image.
    deadline = time.monotonic() + 60
    while release.status != ReleaseStatus.DEPLOYED:
        assert release.status not in (ReleaseStatus.FAILED, ReleaseStatus.CANCELLED), release.error
        assert time.monotonic() < deadline, f"the worker did not deploy the release ({release.status})"
        time.sleep(0.2)
        release.refresh_from_db()
