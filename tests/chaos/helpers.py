"""What the chaos scenarios share: fast heartbeats and the duplicate checks (GitLab tags, Jenkins
builds, DeploymentRecords). Killing a worker and waiting for a release are in tests/helpers/releases.py."""

from deploys.choices import DeploymentOutcome
from deploys.models import DeploymentRecord, Release
from deploys.recipes import RUN_MARKER
from tests.helpers.releases import git_tags

# Heartbeat, staleness and sweep shortened from 10/60/30 s so a scenario takes seconds, not minutes.
FAST_RUNS = {
    "RUN_HEARTBEAT_SECONDS": "1",
    "RUN_STALE_SECONDS": "4",
    "RUN_SWEEP_SECONDS": "2",
    "INTEGRATION_RETRY_BACKOFF_SECONDS": "2",
}


def builds_of(onboarded, release: Release) -> list[int]:
    job = onboarded.pipeline.jenkins.jobs.get(onboarded.project.name)
    marker = f"{release.pk}-{release.run_token}"
    return [
        b.number for b in (job.builds.values() if job else []) if dict(b.params).get(RUN_MARKER) == marker
    ]


def assert_no_duplicates(onboarded, release: Release) -> None:
    release.refresh_from_db()
    assert git_tags(onboarded).count(release.version) <= 1
    assert len(builds_of(onboarded, release)) <= 1, builds_of(onboarded, release)
    records = DeploymentRecord.objects.filter(release=release).exclude(kind="rollback")
    assert records.count() <= 1
    assert not records.filter(outcome=DeploymentOutcome.RUNNING).exists(), (
        "an ended release's rollout runs on"
    )
