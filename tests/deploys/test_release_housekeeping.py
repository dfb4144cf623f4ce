from datetime import timedelta

import pytest
from django.utils import timezone

from deploys import services
from deploys.choices import ReleaseStatus
from deploys.models import Release
from deploys.tasks import release_tag
from observability.models import AuditEvent

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
