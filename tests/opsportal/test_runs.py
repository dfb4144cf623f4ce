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


def _release(people, status: str = ReleaseStatus.SUBMITTED) -> Release:
    return Release.objects.create(
        project=people.project, environment="test", created_by=people.developer, version="v1", status=status
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
