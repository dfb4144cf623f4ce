"""GitLab failing under the release pipeline: the GitLab stand-in injects 429/5xx/401 answers and lost
responses, seen through the real python-gitlab client by the real tag step (Celery tasks applied in this
process, as in test_release_pipeline), with the real Jenkins stand-in, registry and control plane after it.

Applied in-process, a task's retry runs at once whatever its countdown, so the countdown itself is checked
by driving ``run_step`` with a stand-in task object that records it."""

import re
import subprocess
from datetime import datetime
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from prometheus_client import REGISTRY

from deploys import services
from deploys.choices import ReleaseStatus
from deploys.tasks import release_build, release_deploy, release_tag
from integrations.errors import ServerError, Unauthorized
from observability.models import AuditEvent
from opsportal.tasks import retry_countdown, run_step
from tests.helpers.releases import git_tags, release_to_test, run

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]


@pytest.fixture
def gitlab(onboarded, settings):
    settings.INTEGRATION_MAX_RETRIES = 3  # INTEGRATION_RETRY_BACKOFF_SECONDS is 0 under `onboarded`
    standin = onboarded.pipeline.gitlab
    standin.clear_faults()
    yield standin
    standin.clear_faults()  # the stand-in serves the whole session


def tags_post(onboarded) -> str:
    """The tag-create request of this test's project (python-gitlab URL-encodes the project path)."""
    return re.escape(quote(onboarded.project.gitlab_repository, safe="")) + r"/repository/tags$"


def counted(name: str, **labels) -> float:
    """A metric of this process (the steps run here), as /metrics serves it (opsportal.metrics)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def tag_audit(release) -> dict:
    return AuditEvent.objects.get(verb="release.tag", target_id=str(release.pk)).changes


def test_tag_502s_are_retried_and_exactly_one_tag_is_made(people, onboarded, gitlab):
    gitlab.inject_fault(tags_post(onboarded), status=502, count=2, method="POST")
    errors = {"system": "gitlab", "kind": "ServerError"}
    errors_before = counted("opsportal_integration_errors_total", **errors)
    steps = ("tag", "build", "deploy")
    name = "opsportal_release_step_duration_seconds_count"
    steps_before = [counted(name, step=step, outcome="succeeded") for step in steps]
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    # Each refused attempt counts as an error of GitLab's; each step's duration once.
    assert counted("opsportal_integration_errors_total", **errors) == errors_before + 2
    assert [counted(name, step=step, outcome="succeeded") for step in steps] == [n + 1 for n in steps_before]
    assert git_tags(onboarded) == [release.version]
    assert gitlab.request_count(tags_post(onboarded), "POST") == 3  # two refused, the third created it
    assert tag_audit(release)["created"] is True


def test_lost_tag_response_the_retry_finds_the_tag(people, onboarded, gitlab):
    # GitLab creates the tag, but its 201 never reaches us: the client sees a 502.
    gitlab.inject_fault(tags_post(onboarded), status=502, count=1, method="POST", after=True)
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    assert git_tags(onboarded) == [release.version]
    # The retry asked to create it again, got "already exists" and accepted the tag on the same commit.
    assert gitlab.request_count(tags_post(onboarded), "POST") == 2
    audit = tag_audit(release)
    assert (audit["tag"], audit["commit"], audit["created"]) == (release.version, release.commit_sha, False)
    # The accepted tag still brings its commit's time, where the release's lead time (DORA) starts.
    bare = onboarded.pipeline.gitlab.find_project(onboarded.project.gitlab_repository).bare
    committed = subprocess.run(
        ["git", "-C", str(bare), "show", "--no-patch", "--format=%cI", release.commit_sha],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert release.committed_at == datetime.fromisoformat(committed)


def test_tag_401_fails_the_release_without_retrying(people, onboarded, gitlab):
    gitlab.inject_fault(tags_post(onboarded), status=401, count=1, method="POST")
    errors = {"system": "gitlab", "kind": "Unauthorized"}
    errors_before = counted("opsportal_integration_errors_total", **errors)
    failed = {"step": "tag", "outcome": "failed"}
    failed_before = counted("opsportal_release_step_duration_seconds_count", **failed)
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.FAILED
    assert counted("opsportal_integration_errors_total", **errors) == errors_before + 1
    assert counted("opsportal_release_step_duration_seconds_count", **failed) == failed_before + 1
    assert "GitLab rejected the token" in release.error and "401" in release.error
    assert "gave up" not in release.error  # permanent: failed at once, not after retries
    assert gitlab.request_count(tags_post(onboarded), "POST") == 1
    assert release.attempts == 1
    assert git_tags(onboarded) == []
    assert not release.jenkins_build


class _Retry(Exception):
    pass


class RecordingTask:
    """What ``run_step`` uses of a bound Celery task; ``retry`` records the countdown it was given."""

    def __init__(self, retries: int = 0) -> None:
        self.request = SimpleNamespace(retries=retries)
        self.retries: list[tuple[Exception, float]] = []

    def retry(self, *, exc: Exception, countdown: float) -> Exception:
        self.retries.append((exc, countdown))
        return _Retry()


def test_429_retry_after_is_the_countdown_of_the_real_tag_step(people, onboarded, gitlab):
    gitlab.inject_fault(tags_post(onboarded), status=429, count=1, method="POST", retry_after=1)
    release = services.release_submit(actor=people.developer, project=onboarded.project, branch="main")
    task, ids = RecordingTask(), {"release_id": release.pk, "run_token": str(release.run_token)}
    with pytest.raises(_Retry):
        run_step(task, services.release_tag, services.release_fail, **ids)
    [(exc, countdown)] = task.retries
    assert isinstance(exc, ServerError) and exc.status == 429 and exc.retry_after == 1
    assert countdown >= 1  # the backoff alone would be 0 here
    release.refresh_from_db()
    assert release.status == ReleaseStatus.TAGGING and git_tags(onboarded) == []

    # The retry Celery would run a second later goes through, and so does the rest of the release.
    for step_task in (release_tag, release_build, release_deploy):
        release = run(step_task, release)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    assert git_tags(onboarded) == [release.version]


# --- the countdown rule, without the pipeline ---------------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "retry_after", "expected"),
    [
        (0, None, 5),  # plain backoff: 5 * 2**retries
        (2, None, 20),
        (0, 1, 5),  # Retry-After shorter than the backoff: the backoff stands
        (0, 30, 30),  # longer: wait as asked
        (2, 30, 30),
        (0, 3600, 300),  # absurd: capped
        (6, 3600, 320),  # the cap limits only Retry-After, never shortens the backoff
        (0, 0, 5),
    ],
)
def test_retry_countdown(settings, retries, retry_after, expected):
    settings.INTEGRATION_RETRY_BACKOFF_SECONDS = 5
    settings.INTEGRATION_MAX_RETRY_AFTER_SECONDS = 300
    assert retry_countdown(retries, retry_after) == expected


def test_permanent_errors_are_never_retried_even_with_retry_after():
    failed = []

    def step(**_):
        raise Unauthorized("GitLab rejected the token", status=401, retry_after=5)

    task = RecordingTask()
    run_step(task, step, lambda **kw: failed.append(kw["error"]))
    assert task.retries == [] and failed == ["GitLab rejected the token"]
