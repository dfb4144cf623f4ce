"""Issue 14's verification acceptance on running processes: go-hello released through the whole pipeline
(GitLab and Jenkins stand-ins, buildah, the registry) onto the local control plane's pod network, scraped
by Debian's Prometheus through the portal's discovery (Daphne), with traffic sent to the pods over the
sandbox's bridge. A good release is verified; a commit that sets go-hello's error-ratio default to 0.3
makes a bad release, which is verified as regressed and rolled back automatically, with the reason."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from django.utils import timezone

from clusters.choices import PrometheusConfigStatus
from clusters.services.environments import environment_running_image
from deploys.choices import DeploymentKind, ReleaseStatus, VerificationStatus
from deploys.models import DeploymentRecord, Release
from deploys.tasks import rollback_deploy, verify_release
from observability.models import AuditEvent
from opsportal.celery import app
from tests.fixtures.pipeline import use_sandbox_pipeline
from tests.fixtures.prometheus import apply_prometheus_config
from tests.fixtures.services import running_daphne
from tests.helpers.verification import (
    BAD_LINE,
    GOOD_LINE,
    PodTraffic,
    commit_change,
    onboard_go_hello,
    release_through_pipeline,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]

WINDOW = 20  # seconds


def _verify_after_window(release: Release) -> Release:
    """Wait for the check's due time, then run the check the deploy queued, in this process."""
    release.refresh_from_db()
    assert release.verification_status == VerificationStatus.PENDING
    due = datetime.fromisoformat(release.verification["due"])
    time.sleep(max((due - timezone.now()).total_seconds(), 0) + 1)
    verify_release.apply(kwargs={"release_id": release.pk})
    release.refresh_from_db()
    return release


def test_a_bad_go_hello_release_regresses_and_rolls_back_and_a_good_one_is_verified(
    people, settings, local_clusters, demo_pipeline, prometheus_server, tmp_path, unconsumed_task_queue
):
    use_sandbox_pipeline(settings, demo_pipeline)
    with running_daphne(
        tmp_path, PROMETHEUS_URL=prometheus_server.url, PROMETHEUS_SCRAPE_INTERVAL="5"
    ) as portal:
        state = apply_prometheus_config(settings, prometheus_server, portal_url=portal)
        assert state.status == PrometheusConfigStatus.APPLIED, state.error
        env = onboard_go_hello(
            people,
            demo_pipeline,
            local_clusters["test"],
            auto_rollback=True,
            verification_window_seconds=WINDOW,  # below the form's minimum: tests only
            verification_min_requests=20,
        )
        project = env.project
        traffic = PodTraffic(env, port=8080)
        try:
            good = release_through_pipeline(people, project)
            traffic.start()
            good = _verify_after_window(good)
            assert good.verification_status == VerificationStatus.VERIFIED, good.verification
            assert good.verification["new"]["requests"] >= 20
            assert good.verification["new"]["error_ratio"] < 0.02

            commit_change(demo_pipeline, project.gitlab_repository, tmp_path / "work", GOOD_LINE, BAD_LINE)
            bad = release_through_pipeline(people, project)
            bad = _verify_after_window(bad)
            assert traffic.sent > 0
            assert bad.verification_status == VerificationStatus.REGRESSED, bad.verification
            numbers = bad.verification
            assert 0.2 < numbers["new"]["error_ratio"] < 0.32, numbers
            assert numbers["baseline"]["error_ratio"] < 0.02, numbers
            rollback = DeploymentRecord.objects.get(project=project, kind=DeploymentKind.ROLLBACK)
            assert rollback.image == good.image
            assert rollback.message.startswith("verification: error ratio ")
            assert AuditEvent.objects.filter(
                verb="release.rollback.auto", target_id=str(rollback.pk)
            ).exists()
            # The rollback's task, queued on commit, run here as a worker would.
            rollback_deploy.apply(kwargs={"record_id": rollback.pk})
            bad.refresh_from_db()
            assert bad.status == ReleaseStatus.ROLLED_BACK
            running = environment_running_image(environment=env)
            assert running.image == good.image
        finally:
            traffic.stop()
            # Nothing consumes this run's queue: drop what the steps queued on commit.
            app.control.purge()
