"""What every build through the release pipeline shares: the GitLab, Jenkins and registry clients made
from the settings, the managed job's configuration, the build's parameters, and one look at a running
build. Releases and log proxy rollouts both tag in GitLab, copy the language's template job, trigger a
build carrying a run marker, and follow it by short polls; the run rows keep the same build fields
(``jenkins_job``, ``jenkins_queue_id``, ``jenkins_build``, ``build_started_at``, ``console_offset``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
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
