"""Releases run step by step as the worker would: each task applied in this process, in order."""

import os
import signal
import subprocess
import time

from clusters.models import ProjectEnvironment
from clusters.services.environments import environment_running_image
from deploys import services
from deploys.choices import ReleaseStatus
from deploys.models import Release
from deploys.tasks import release_build, release_deploy, release_tag
from integrations.kubernetes.client import KubeClient
from tests.fixtures.pipeline import run_release_task
from tests.polling import until

RECOVERY_LIMIT = 120  # issue #11's bound: a release ends within 2 minutes of a recovery


def run(task, release: Release) -> Release:
    return run_release_task(task, release)


def release_to_test(people, onboarded, **kwargs) -> Release:
    release = services.release_submit(
        actor=people.developer, project=onboarded.project, branch="main", **kwargs
    )
    for task in (release_tag, release_build, release_deploy):
        release = run(task, release)
    return release


def git_tags(onboarded) -> list[str]:
    bare = onboarded.pipeline.gitlab.find_project(onboarded.project.gitlab_repository).bare
    return subprocess.run(
        ["git", "-C", str(bare), "tag", "-l"], capture_output=True, text=True, check=True
    ).stdout.split()


def kill(worker) -> None:
    """SIGKILL the worker's whole process group (the worker and its beat): nothing is acknowledged."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def status(release: Release) -> str:
    release.refresh_from_db()
    return release.status


def running_image(onboarded, environment: str) -> tuple[str, bool]:
    env = ProjectEnvironment.objects.select_related("cluster", "project").get(
        project=onboarded.project, environment=environment
    )
    running = environment_running_image(environment=env)
    return (running.image, running.rolled_out) if running else ("", False)


def hold_rollouts(onboarded, environment: str, seconds: int) -> None:
    """Keep the environment's next rollouts open for ``seconds`` (the Deployment's minReadySeconds).

    The local control plane marks pods ready at once, so a rollout can finish before a test sees its
    release deploying; a pod counts as available only after minReadySeconds, which leaves a window as
    wide as a test needs. The release's image swap patches the image only and keeps this field."""
    env = ProjectEnvironment.objects.select_related("cluster", "project").get(
        project=onboarded.project, environment=environment
    )
    with KubeClient.from_cluster(env.cluster) as client:
        client.patch("Deployment", env.namespace, env.project.name, {"spec": {"minReadySeconds": seconds}})


def wait_until_ended(release: Release, *, since: float, timeout: float = RECOVERY_LIMIT) -> float:
    """Wait for the release to end; return the seconds it took from ``since`` (a monotonic time)."""
    until(
        f"release {release.pk} to end (deployed or failed) after recovery",
        lambda: status(release) in (ReleaseStatus.DEPLOYED, ReleaseStatus.FAILED),
        timeout=max(since + timeout - time.monotonic(), 1),
    )
    return time.monotonic() - since
