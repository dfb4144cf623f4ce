"""Releases run step by step as the worker would: each task applied in this process, in order."""

import subprocess

from deploys import services
from deploys.models import Release
from deploys.tasks import release_build, release_deploy, release_tag
from tests.fixtures.pipeline import run_release_task


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
