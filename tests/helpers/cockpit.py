"""Rows for the project cockpit's tests: an environment on a cluster nobody answers for, and a history
of releases with their rollouts."""

from datetime import timedelta

from django.utils import timezone

from clusters.models import Cluster, ProjectEnvironment
from deploys.models import DeploymentRecord, Release
from tests.fixtures.clusters import VALID_REQUEST

# Nothing listens on the discard port: connections are refused at once.
CLOSED_URL = "https://127.0.0.1:9"


def make_environment(people, environment: str = "test") -> ProjectEnvironment:
    cluster = Cluster.objects.create(
        name=f"closed-{environment}",
        environment=environment,
        api_url=CLOSED_URL,
        auth_type="token",
        credential="t",
        verify_tls=False,
    )
    return ProjectEnvironment.objects.create(
        project=people.project,
        environment=environment,
        cluster=cluster,
        namespace=f"orders-{environment}",
        spec={"request": dict(VALID_REQUEST), "overrides": {}},
        provisioned_at=timezone.now(),
    )


def make_release(people, version: str, *, status: str = "deployed", environment: str = "test", at=None):
    release = Release.objects.create(
        project=people.project,
        environment=environment,
        created_by=people.developer,
        branch="main",
        version=version,
        status=status,
    )
    if at is not None:
        Release.objects.filter(pk=release.pk).update(created_at=at)
        release.refresh_from_db()
    return release


def record(people, release, *, outcome="succeeded", kind="release", finished_at=None) -> DeploymentRecord:
    return DeploymentRecord.objects.create(
        project=people.project,
        environment=release.environment,
        kind=kind,
        release=release,
        image=f"registry.local/orders@sha256:{release.pk:064d}",
        outcome=outcome,
        actor=people.developer,
        finished_at=finished_at,
    )


def history(people, count: int, *, environment: str = "test") -> list[Release]:
    """``count`` deployed releases an hour apart, oldest first, each with its successful rollout."""
    start = timezone.now() - timedelta(hours=count + 1)
    releases = []
    for index in range(count):
        at = start + timedelta(hours=index)
        release = make_release(people, f"v{index + 1}", environment=environment, at=at)
        record(people, release, finished_at=at + timedelta(minutes=5))
        releases.append(release)
    return releases
