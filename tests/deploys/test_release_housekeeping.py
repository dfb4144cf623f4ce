from datetime import timedelta

import pytest
from django.utils import timezone

from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, Release
from deploys.tasks import release_tag
from observability.models import AuditEvent
from opsportal.errors import StateConflict

pytestmark = pytest.mark.django_db


def _release(people, status: str, environment: str = "test") -> Release:
    return Release.objects.create(
        project=people.project,
        environment=environment,
        created_by=people.developer,
        version=f"v-{status}",
        status=status,
    )


def test_abandoned_releases_are_failed_and_recent_ones_left_alone(people):
    stuck = _release(people, ReleaseStatus.BUILDING)
    fresh = _release(people, ReleaseStatus.DEPLOYING, environment="prod")
    Release.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    assert services.releases_fail_stuck(older_than_seconds=3600) == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.status == ReleaseStatus.FAILED
    assert "worker was lost" in stuck.error
    assert fresh.status == ReleaseStatus.DEPLOYING
    assert AuditEvent.objects.filter(verb="release.fail", target_id=str(stuck.pk)).exists()


def test_a_step_that_cannot_reach_gitlab_ends_the_release_with_the_cause(people, settings):
    settings.GITLAB_URL = ""  # integration off: a permanent error, never retried
    release = _release(people, ReleaseStatus.SUBMITTED)
    release_tag.apply(kwargs={"release_id": release.pk, "run_token": str(release.run_token)})
    release.refresh_from_db()
    assert release.status == ReleaseStatus.FAILED
    assert "GitLab is not configured" in release.error


def test_a_message_from_another_run_changes_nothing(people):
    release = _release(people, ReleaseStatus.SUBMITTED)
    release_tag.apply(kwargs={"release_id": release.pk, "run_token": "00000000-0000-0000-0000-000000000000"})
    release.refresh_from_db()
    assert release.status == ReleaseStatus.SUBMITTED
    assert release.attempts == 0


def _record(release: Release, outcome: str, *, kind: str = "release", image: str = "") -> DeploymentRecord:
    return DeploymentRecord.objects.create(
        project=release.project,
        environment=release.environment,
        kind=kind,
        release=release,
        image=image or f"registry.local/app@sha256:{release.pk:064d}",
        actor=release.created_by,
        outcome=outcome,
    )


def test_a_swept_release_ends_its_rollout_and_rollback_is_possible(people):
    good = _release(people, ReleaseStatus.DEPLOYED)
    good_record = _record(good, DeploymentOutcome.SUCCEEDED)
    lost = _release(people, ReleaseStatus.DEPLOYING)
    lost_record = _record(lost, DeploymentOutcome.RUNNING)
    Release.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(hours=2))

    assert services.releases_fail_stuck(older_than_seconds=3600) == 1
    lost.refresh_from_db()
    lost_record.refresh_from_db()
    assert lost.status == ReleaseStatus.FAILED
    # The release's run ended, so did the rollout it started: with the cause, in the same transaction.
    assert lost_record.outcome == DeploymentOutcome.FAILED
    assert "worker was lost" in lost_record.message
    assert lost_record.finished_at is not None
    assert AuditEvent.objects.filter(verb="release.deployment.end", target_id=str(lost_record.pk)).exists()

    record = services.release_rollback(
        actor=people.developer, project=people.project, environment="test", record_id=good_record.pk
    )
    assert record.outcome == DeploymentOutcome.RUNNING and record.image == good_record.image


def test_a_record_left_running_by_an_ended_run_never_blocks_rollback(people):
    """Rows written before runs ended their rollouts (or by a dead rollback worker) are ended when a
    rollback needs the environment; a live rollout still refuses it."""
    good = _release(people, ReleaseStatus.DEPLOYED)
    good_record = _record(good, DeploymentOutcome.SUCCEEDED)
    failed = _release(people, ReleaseStatus.FAILED)
    orphan = _record(failed, DeploymentOutcome.RUNNING)
    dead_rollback = _record(good, DeploymentOutcome.RUNNING, kind="rollback", image="registry.local/app:old")
    DeploymentRecord.objects.filter(pk=dead_rollback.pk).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    live_rollback = _record(good, DeploymentOutcome.RUNNING, kind="rollback", image="registry.local/app:new")

    with pytest.raises(StateConflict, match="rollout is running"):
        services.release_rollback(
            actor=people.ops, project=people.project, environment="test", record_id=good_record.pk
        )
    DeploymentRecord.objects.filter(pk=live_rollback.pk).update(outcome=DeploymentOutcome.SUCCEEDED)
    record = services.release_rollback(
        actor=people.ops, project=people.project, environment="test", record_id=good_record.pk
    )
    assert record.outcome == DeploymentOutcome.RUNNING
    orphan.refresh_from_db()
    dead_rollback.refresh_from_db()
    assert orphan.outcome == DeploymentOutcome.FAILED and "ended" in orphan.message
    assert dead_rollback.outcome == DeploymentOutcome.FAILED and "worker was lost" in dead_rollback.message
    assert AuditEvent.objects.filter(verb="release.deployment.abandoned").count() == 2
