"""What every build through the release pipeline shares: the GitLab, Jenkins and registry clients made
from the settings, the managed job's configuration, the build's parameters, and one look at a running
build. Releases and log proxy rollouts both tag in GitLab, copy the language's template job, trigger a
build carrying a run marker, and follow it by short polls; the run rows keep the same build fields
(``jenkins_job``, ``jenkins_queue_id``, ``jenkins_build``, ``build_started_at``, ``console_offset``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from deploys import recipes
from integrations.errors import IntegrationError

BUILD_QUEUE_TIMEOUT = 300  # seconds a build may wait in Jenkins' queue for an executor


def gitlab_client():
    from integrations.gitlab import GitLabClient

    if not settings.GITLAB_URL:
        raise IntegrationError(_("GitLab is not configured (GITLAB_URL)."), permanent=True)
    return GitLabClient(settings.GITLAB_URL, settings.GITLAB_TOKEN)


def jenkins_client():
    from integrations.jenkins import JenkinsClient

    if not settings.JENKINS_URL:
        raise IntegrationError(_("Jenkins is not configured (JENKINS_URL)."), permanent=True)
    return JenkinsClient(settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN)


def registry_client():
    from integrations.registry import RegistryClient

    if not settings.REGISTRY_URL:
        raise IntegrationError(_("The image registry is not configured (REGISTRY_URL)."), permanent=True)
    return RegistryClient(
        settings.REGISTRY_URL,
        username=settings.REGISTRY_USER or None,
        password=settings.REGISTRY_PASSWORD or None,
    )


def tag_run(run, *, repository: str, message: str):
    """Tag ``repository`` at the run's branch as ``run.version``; returns the tag. The commit is fixed on
    the first attempt, so a retry after the branch moved tags the same commit."""
    gitlab = gitlab_client()
    sha = run.commit_sha
    if not sha:
        sha = gitlab.branch(repository, run.branch).commit_sha
        type(run).objects.filter(pk=run.pk).update(commit_sha=sha)
    return gitlab.ensure_tag(repository, run.version, sha, message, expected_sha=sha)


def image_repository(name: str) -> str:
    """Where the images of ``name`` are pushed, as pods refer to them."""
    return f"{settings.REGISTRY_HOST}/{name}" if settings.REGISTRY_HOST else name


def job_config(template_xml: str, *, description: str, build_shell: str) -> str:
    """The managed job: the language's template job with the recipe's shell and the build parameters."""
    from integrations.jenkins import render_freestyle_config

    return render_freestyle_config(
        template_xml,
        description=description,
        parameters=[(name, "") for name in recipes.BUILD_PARAMETERS],
        shell=build_shell,
    )


def build_parameters(
    *, recipe, language: str, name: str, port: int, git_url: str, tag: str, image: str, marker: str
) -> dict[str, str]:
    """The build's parameters: everything that varies reaches the shell as an environment variable."""
    try:
        dockerfile = recipes.render_dockerfile(
            recipe.dockerfile,
            project=name,
            port=port,
            base=recipes.base_image(language),
            prestop_helper=recipes.prestop_helper_image(),
        )
    except ValueError as exc:
        # A setting ops left empty: retrying cannot help, and the run's page must say what to set.
        raise IntegrationError(
            _("The build cannot start: %(cause)s. Ops: set it in the portal's environment and release again.")
            % {"cause": exc},
            permanent=True,
        ) from exc
    return {
        "GIT_URL": git_url,
        "GIT_TAG": tag,
        "IMAGE": image,
        "DOCKERFILE": dockerfile,
        "APP_PORT": str(port),
        recipes.RUN_MARKER: marker,
    }


def start_build(
    jenkins,
    run,
    *,
    language: str,
    config: Callable[[str], str],
    marker: str,
    repository: str,
    parameters: Callable[[str], dict[str, str]],
) -> tuple[int | None, int | None]:
    """Make sure the run's managed job exists (``config`` turns the language's template job into it), then
    start its build; returns ``(build number, queue id)``. A retried step finds the build (or queue item)
    its earlier attempt started, by the run marker, instead of starting another. ``parameters(git_url)``
    are the build's parameters for the clone URL of ``repository``."""
    job = run.jenkins_job
    jenkins.ensure_job(job, recipes.template_job(language), config)
    number, queue_id = run.jenkins_build, run.jenkins_queue_id
    if number is None and queue_id is None:
        queue_id = jenkins.find_queued_by_marker(job, recipes.RUN_MARKER, marker)
        if queue_id is None:
            number = jenkins.find_build_by_marker(job, recipes.RUN_MARKER, marker)
        if number is None and queue_id is None:
            git_url = gitlab_client().project(repository).http_url_to_repo
            queue_id = jenkins.trigger(job, parameters(git_url))
    return number, queue_id


@dataclass
class BuildLook:
    """What one poll saw of the build; nothing of it is written until the poll claims its turn."""

    number: int | None
    console: str = ""
    console_offset: int = 0
    done: bool = False
    result: str | None = None
    digest: str = ""
    timed_out: str = ""


def look_at_build(jenkins, run, *, image_name: str, tag: str) -> BuildLook:
    """Read what changed since the last poll of ``run``'s build (a release or a rollout). Only reads (and
    stops a build that ran out of time), so a poll that fails halfway and is retried has changed nothing.
    A successful build's digest is looked up in the registry as ``image_name:tag``."""
    elapsed = (timezone.now() - (run.build_started_at or timezone.now())).total_seconds()
    job, number = run.jenkins_job, run.jenkins_build
    if number is None:
        number = jenkins.queue_build_number(run.jenkins_queue_id)
        if number is None:
            timed_out = ""
            if elapsed > BUILD_QUEUE_TIMEOUT:
                timed_out = _("Jenkins did not start the build within %(s)s s.") % {"s": BUILD_QUEUE_TIMEOUT}
            return BuildLook(number=None, console_offset=run.console_offset, timed_out=timed_out)
    chunk = jenkins.console_chunk(job, number, run.console_offset)
    look = BuildLook(number=number, console=chunk.text, console_offset=chunk.next_start)
    if not chunk.more:
        info = jenkins.build_info(job, number)
        # The log is complete a moment before the result is recorded: then look again at the next poll.
        look.done, look.result = not info.building, info.result
        if look.done and info.result == "SUCCESS":
            look.digest = registry_client().resolve(image_name, tag).digest
    if not look.done and elapsed > settings.RELEASE_BUILD_TIMEOUT:
        jenkins.stop(job, number)
        look.timed_out = _("The build took longer than %(s)s s and was stopped.") % {
            "s": settings.RELEASE_BUILD_TIMEOUT
        }
    return look


def write_look(current: QuerySet, run, look: BuildLook, *, poll: int, console_limit: int) -> str | None:
    """Write one poll's look (console appended, kept to its last ``console_limit`` characters) if ``current``
    (the run, still at look number ``poll``) matches: a redelivered or duplicate poll then writes nothing
    and gets None. Returns the console kept. Call it in the transaction that acts on the look."""
    console = (run.console + look.console)[-console_limit:]
    turn = current.update(
        build_polls=poll + 1,
        console=console,
        console_offset=look.console_offset,
        updated_at=timezone.now(),
        # The next look is due then: the run is looked after until it is.
        heartbeat_at=timezone.now() + timedelta(seconds=settings.RELEASE_BUILD_POLL_SECONDS),
    )
    return console if turn else None
