"""opsportal.runs: the one set of run mechanics provisioning, releases and config changes share."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from deploys.choices import ReleaseStatus, TicketStatus
from deploys.models import OnboardingTicket, Release
from deploys.tasks import fail_stuck_tickets, provision_ticket, release_build_poll, release_deploy
from observability.models import AuditEvent, LiveEvent
from opsportal import runs
from opsportal.errors import StateConflict

pytestmark = pytest.mark.django_db


def _release(people, status: str = ReleaseStatus.SUBMITTED, environment: str = "test") -> Release:
    return Release.objects.create(
        project=people.project,
        environment=environment,
        created_by=people.developer,
        version="v1",
        status=status,
    )


def _claim(release: Release, token=None) -> Release | None:
    return runs.claim(
        Release,
        release.pk,
        str(token or release.run_token),
        start=ReleaseStatus.SUBMITTED,
        working=ReleaseStatus.TAGGING,
        verb="release.tag.start",
    )


def test_claim_starts_once_retakes_for_the_same_run_and_refuses_others(people):
    release = _release(people)
    claimed = _claim(release)
    assert claimed.status == ReleaseStatus.TAGGING and claimed.attempts == 1 and claimed.started_at
    assert AuditEvent.objects.filter(verb="release.tag.start").count() == 1
    assert LiveEvent.objects.filter(type="release-changed", payload__status="tagging").count() == 1

    # A retry or redelivery of the same run takes it again, without a second start.
    again = _claim(release)
    assert again.status == ReleaseStatus.TAGGING and again.attempts == 2
    assert again.started_at == claimed.started_at
    assert AuditEvent.objects.filter(verb="release.tag.start").count() == 1
    # Another run's message, or one for an ended run, gets nothing and changes nothing.
    assert _claim(release, token=uuid.uuid4()) is None
    assert runs.fail(Release, release.pk, str(release.run_token), error="boom", verb="release.fail")
    assert _claim(release) is None
    release.refresh_from_db()
    assert release.status == ReleaseStatus.FAILED and release.attempts == 2 and release.finished_at
    assert not runs.fail(Release, release.pk, str(release.run_token), error="late", verb="release.fail")
    release.refresh_from_db()
    assert release.error == "boom"


def test_claim_refuses_a_move_the_transition_map_forbids(people):
    release = _release(people)
    with pytest.raises(ValueError, match="cannot move"):
        runs.claim(
            Release,
            release.pk,
            str(release.run_token),
            start=ReleaseStatus.SUBMITTED,
            working=ReleaseStatus.DEPLOYED,
            verb="x",
        )
    with pytest.raises(StateConflict, match="cannot become"):
        runs.move(runs.locked(Release, release.pk), ReleaseStatus.DEPLOYED, actor=None, verb="x")


def test_progress_keeps_the_newest_lines_only_while_the_run_is_in_progress(people):
    release = _claim(_release(people))
    for n in range(runs.PROGRESS_LIMIT + 5):
        runs.progress(Release, release.pk, str(release.run_token), f"line {n}")
    release.refresh_from_db()
    assert len(release.progress) == runs.PROGRESS_LIMIT
    assert release.progress[0]["message"] == "line 5"
    assert release.progress[-1]["message"] == f"line {runs.PROGRESS_LIMIT + 4}"
    assert LiveEvent.objects.filter(type="release-progress").count() == runs.PROGRESS_LIMIT + 5

    runs.progress(Release, release.pk, str(uuid.uuid4()), "from another run")
    runs.fail(Release, release.pk, str(release.run_token), error="boom", verb="release.fail")
    runs.progress(Release, release.pk, str(release.run_token), "after the end")
    release.refresh_from_db()
    assert release.progress[-1]["message"] == f"line {runs.PROGRESS_LIMIT + 4}"


def test_stuck_thresholds_come_from_the_tasks_own_time_limits(settings):
    settings.CELERY_TASK_TIME_LIMIT = 60  # the global default must not shorten a task's own limit
    assert runs.stuck_after(provision_ticket) == provision_ticket.time_limit + runs.STUCK_GRACE_SECONDS
    assert runs.stuck_after(release_build_poll, release_deploy) == (
        release_deploy.time_limit + runs.STUCK_GRACE_SECONDS
    )


def test_the_ticket_sweeper_spares_a_run_younger_than_its_tasks_limit(people, settings):
    settings.CELERY_TASK_TIME_LIMIT = 60
    limit = provision_ticket.time_limit

    def provisioning(environment: str, silent_for: int) -> OnboardingTicket:
        ticket = OnboardingTicket.objects.create(
            project=people.project,
            environment=environment,
            created_by=people.developer,
            status=TicketStatus.PROVISIONING,
            run_token=uuid.uuid4(),
        )
        OnboardingTicket.objects.filter(pk=ticket.pk).update(
            updated_at=timezone.now() - timedelta(seconds=silent_for)
        )
        return ticket

    quiet = provisioning("test", silent_for=limit + 60)  # a long rollout wait: still within the limit
    lost = provisioning("prod", silent_for=limit + runs.STUCK_GRACE_SECONDS + 60)
    fail_stuck_tickets.apply()
    quiet.refresh_from_db()
    lost.refresh_from_db()
    assert quiet.status == TicketStatus.PROVISIONING
    assert lost.status == TicketStatus.FAILED and "stopped responding" in lost.error
    assert AuditEvent.objects.filter(verb="ticket.provision.fail", target_id=str(lost.pk)).count() == 1


def _stale(release: Release, *, holder: str, seconds: int = 3600) -> None:
    Release.objects.filter(pk=release.pk).update(
        step_task_id=holder, heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_stale_run_is_resumed_by_a_new_message_and_the_lost_one_is_refused(
    people, settings, django_capture_on_commit_callbacks
):
    from deploys.services import releases_resume_stale
    from deploys.tasks import release_tag

    settings.GITLAB_URL = ""  # the resumed step's outside call fails at once, visibly
    lost = _claim(_release(people))
    fresh = _release(people, ReleaseStatus.DEPLOYING, environment="prod")
    _stale(lost, holder="killed-worker-task")
    _stale(fresh, holder="live-worker-task", seconds=1)  # its worker beat a second ago

    sent = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(release_tag, "apply_async", lambda **kw: sent.append(kw))
        with django_capture_on_commit_callbacks(execute=True):
            assert releases_resume_stale() == (1, 0)
    assert len(sent) == 1
    assert sent[0]["kwargs"] == {"release_id": lost.pk, "run_token": str(lost.run_token)}
    lost.refresh_from_db()
    assert lost.status == ReleaseStatus.TAGGING and lost.resumes == 1
    assert lost.step_task_id == sent[0]["task_id"]
    assert AuditEvent.objects.filter(verb="release.resume", target_id=str(lost.pk)).count() == 1
    fresh.refresh_from_db()
    assert fresh.resumes == 0 and fresh.step_task_id == "live-worker-task"

    # The killed worker's message, redelivered by the broker, finds the step held by its successor.
    attempts = lost.attempts
    release_tag.apply(kwargs=sent[0]["kwargs"], task_id="killed-worker-task")
    lost.refresh_from_db()
    assert lost.status == ReleaseStatus.TAGGING and lost.attempts == attempts
    # The resumed message takes it (and here meets GitLab switched off).
    release_tag.apply(kwargs=sent[0]["kwargs"], task_id=sent[0]["task_id"])
    lost.refresh_from_db()
    assert lost.attempts == attempts + 1
    assert lost.status == ReleaseStatus.FAILED and "GitLab is not configured" in lost.error


def test_a_run_past_its_resumes_is_given_up_with_the_cause(people, settings):
    from deploys.services import releases_resume_stale

    settings.RUN_MAX_RESUMES = 2
    release = _claim(_release(people))
    _stale(release, holder="t")
    Release.objects.filter(pk=release.pk).update(resumes=2)
    assert releases_resume_stale() == (0, 1)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.FAILED
    assert "lost 2 times" in release.error


def test_a_new_step_may_be_claimed_while_the_last_one_was_held(people):
    """A status change is a step boundary: the next step's first message is never refused as a
    duplicate of the step before."""
    release = _claim(_release(people))
    Release.objects.filter(pk=release.pk).update(step_task_id="tag-task")
    with runs.transaction.atomic():
        runs.move(runs.locked(Release, release.pk), ReleaseStatus.BUILDING, actor=None, verb="release.tag")
    release.refresh_from_db()
    assert release.step_task_id == "" and release.resumes == 0
    from deploys.services.releases import BUILD

    assert BUILD.claim(release.pk, str(release.run_token)) is not None


def test_a_run_waiting_for_its_first_message_is_queued_again_but_never_given_up(people, settings):
    """A submitted release no worker has taken is behind busy workers or lost with the broker: no worker
    died on it, so its resumes do not count."""
    from deploys.services import releases_resume_stale

    settings.RUN_MAX_RESUMES = 1
    release = _release(people)
    _stale(release, holder="")
    Release.objects.filter(pk=release.pk).update(resumes=1)
    assert releases_resume_stale() == (1, 0)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.SUBMITTED and release.resumes == 1
