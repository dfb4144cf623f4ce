"""Deploying the log proxy to a cluster: a LogProxyRollout run, through the release pipeline.

queued → tagging (the proxy's GitLab project, LOGPROXY_GIT_PROJECT, tagged at its branch's commit) →
building (the "python" recipe's Jenkins job, followed by short polls) → built (the image's digest in the
registry) → applying (clusters' ``log_proxy_apply``: the objects by server-side apply, then the
rollout) → deployed, or failed with the cause and the next step. Each step claims the rollout under its
row lock and run token, is idempotent (the tag is ensured, the build found by its run marker, apply is
apply) and is resumed from its status when its worker is lost, like a release's steps.
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Cluster, LogPipeline
from clusters.models.logging import SERVICE_NAME
from clusters.services.common import rollout_reporter
from clusters.services.log_pipelines import log_proxy_apply
from deploys.choices import RolloutStatus
from deploys.models import BuildRecipe, LogProxyRollout
from deploys.services import builds
from deploys.services.releases import release_version
from deploys.tasks import log_proxy_apply as apply_task
from deploys.tasks import log_proxy_build as build_task
from deploys.tasks import log_proxy_build_poll as build_poll_task
from deploys.tasks import log_proxy_tag as tag_task
from observability.services import audit_record
from opsportal import runs
from opsportal.errors import StateConflict
from projects.access import require_ops
from projects.choices import Language

logger = logging.getLogger(__name__)

CONSOLE_LIMIT = 256 * 1024
LANGUAGE = Language.PYTHON
JOB_NAME = "opsportal-logproxy"

TAG = runs.Step(LogProxyRollout, RolloutStatus.QUEUED, RolloutStatus.TAGGING, "log_proxy.tag.start")
BUILD = runs.Step(LogProxyRollout, RolloutStatus.BUILDING, RolloutStatus.BUILDING, "log_proxy.build.start")
APPLY = runs.Step(LogProxyRollout, RolloutStatus.BUILT, RolloutStatus.APPLYING, "log_proxy.apply.start")


def _queue(task, rollout: LogProxyRollout, **kwargs) -> None:
    runs.queue(task, rollout_id=rollout.pk, run_token=str(rollout.run_token), **kwargs)


def active_rollout(pipeline: LogPipeline) -> LogProxyRollout | None:
    return LogProxyRollout.objects.filter(
        pipeline=pipeline, status__in=LogProxyRollout.RUNNING_STATUSES
    ).first()


def log_proxy_deploy(*, actor, cluster: Cluster, remote_addr: str | None = None) -> LogProxyRollout:
    """Queue a rollout of the proxy to ``cluster``'s log pipeline (ops); one at a time per pipeline."""
    require_ops(actor)
    if not settings.LOGPROXY_GIT_PROJECT:
        raise ValidationError(_("LOGPROXY_GIT_PROJECT is not set: name the GitLab project of the proxy."))
    recipe = BuildRecipe.objects.filter(language=LANGUAGE).first()
    if recipe is None:
        raise ValidationError(_("There is no build recipe for Python yet; add one on the recipes page."))
    with transaction.atomic():
        pipeline = LogPipeline.objects.select_for_update().filter(cluster=cluster).first()
        if pipeline is None:
            raise ValidationError(
                _("Save the log pipeline's settings for %(c)s first.") % {"c": cluster.name}
            )
        active = active_rollout(pipeline)
        if active is not None:
            raise StateConflict(
                _("Rollout %(v)s (#%(id)s) is in progress on %(c)s; wait for it.")
                % {"v": active.version, "id": active.pk, "c": cluster.name}
            )
        rollout = LogProxyRollout.objects.create(
            pipeline=pipeline,
            created_by=actor,
            git_project=settings.LOGPROXY_GIT_PROJECT,
            branch=settings.LOGPROXY_GIT_BRANCH,
            version=release_version(user=actor),
            recipe=recipe,
            image_repository=builds.image_repository(SERVICE_NAME),
            jenkins_job=JOB_NAME,
        )
        audit_record(
            actor=actor,
            verb="log_proxy.deploy",
            target=rollout,
            changes={
                "cluster": cluster.name,
                "namespace": pipeline.namespace,
                "source": f"{rollout.git_project}@{rollout.branch}",
                "version": rollout.version,
            },
            remote_addr=remote_addr,
        )
        runs.publish(rollout)
        _queue(tag_task, rollout)
    return rollout


# --- the steps ------------------------------------------------------------------------------------


def log_proxy_tag(*, rollout_id: int, run_token: str) -> None:
    rollout = TAG.claim(rollout_id, run_token)
    if rollout is None:
        return
    tag = builds.tag_run(
        rollout,
        repository=rollout.git_project,
        message=f"OpsPortal log proxy {rollout.version} by {rollout.created_by.get_username()}",
    )
    with transaction.atomic():
        rollout = runs.locked_run(LogProxyRollout, rollout_id, run_token, RolloutStatus.TAGGING)
        if rollout is None:
            return
        rollout.commit_sha = tag.commit_sha
        runs.move(
            rollout,
            RolloutStatus.BUILDING,
            actor=None,
            verb="log_proxy.tag",
            changes={"tag": rollout.version, "commit": tag.commit_sha, "created": tag.created},
        )
        _queue(build_task, rollout)


def _job_config(rollout: LogProxyRollout, template_xml: str) -> str:
    return builds.job_config(
        template_xml,
        description="Managed by OpsPortal: the log proxy's image. Changes here are overwritten.",
        build_shell=rollout.recipe.build_shell,
    )


def log_proxy_build(*, rollout_id: int, run_token: str) -> None:
    """Start the Jenkins build (or find the one an earlier attempt started) and hand it to the polls."""
    rollout = BUILD.claim(rollout_id, run_token)
    if rollout is None:
        return
    marker = f"logproxy-{rollout.pk}-{rollout.run_token}"
    number, queue_id = builds.start_build(
        builds.jenkins_client(),
        rollout,
        language=LANGUAGE,
        config=lambda xml: _job_config(rollout, xml),
        marker=marker,
        repository=rollout.git_project,
        parameters=lambda git_url: builds.build_parameters(
            recipe=rollout.recipe,
            language=LANGUAGE,
            name=SERVICE_NAME,
            port=6379,
            git_url=git_url,
            tag=rollout.version,
            image=f"{rollout.image_repository}:{rollout.version}",
            marker=marker,
        ),
    )
    job = rollout.jenkins_job
    with transaction.atomic():
        rollout = runs.locked_run(LogProxyRollout, rollout_id, run_token, RolloutStatus.BUILDING)
        if rollout is None:
            return
        rollout.jenkins_queue_id = queue_id
        rollout.build_started_at = rollout.build_started_at or timezone.now()
        if number is not None and rollout.jenkins_build is None:
            rollout.jenkins_build = number
        rollout.save(update_fields=["jenkins_queue_id", "build_started_at", "jenkins_build", "updated_at"])
        audit_record(
            actor=None,
            verb="log_proxy.build",
            target=rollout,
            changes={"job": job, "queue_id": queue_id, "build": number},
        )
        runs.publish(rollout)
        _queue(build_poll_task, rollout, poll=rollout.build_polls)


def log_proxy_build_poll(*, rollout_id: int, run_token: str, poll: int) -> None:
    """One look at the build; a duplicate or late poll (another look number) does nothing."""
    current = LogProxyRollout.objects.filter(
        pk=rollout_id, run_token=run_token, status=RolloutStatus.BUILDING, build_polls=poll
    )
    rollout = current.first()
    if rollout is None:
        return
    look = builds.look_at_build(
        builds.jenkins_client(), rollout, image_name=SERVICE_NAME, tag=rollout.version
    )
    with transaction.atomic():
        console = builds.write_look(current, rollout, look, poll=poll, console_limit=CONSOLE_LIMIT)
        if console is None:
            return
        rollout = runs.locked(LogProxyRollout, rollout_id)
        if look.number is not None and rollout.jenkins_build is None:
            rollout.jenkins_build = look.number
            rollout.save(update_fields=["jenkins_build", "updated_at"])
        if look.console:
            runs.publish(rollout, "logproxy-rollout-console", text=look.console[-65536:])
        if look.timed_out:
            runs.finish(rollout, RolloutStatus.FAILED, verb="log_proxy.fail", error=look.timed_out)
        elif not look.done:
            _queue(build_poll_task, rollout, poll=poll + 1, countdown=settings.RELEASE_BUILD_POLL_SECONDS)
        elif look.result != "SUCCESS":
            tail = "\n".join(console.splitlines()[-20:])
            error = _(
                "Jenkins build #%(n)s of %(job)s ended %(result)s; read its console below, fix the proxy's "
                "source or the Python recipe, and deploy again.\n%(tail)s"
            ) % {"n": rollout.jenkins_build, "job": rollout.jenkins_job, "result": look.result, "tail": tail}
            runs.finish(rollout, RolloutStatus.FAILED, verb="log_proxy.fail", error=error)
        else:
            rollout.image_digest = look.digest
            runs.move(
                rollout,
                RolloutStatus.BUILT,
                actor=None,
                verb="log_proxy.built",
                changes={"image": rollout.image},
            )
            _queue(apply_task, rollout)


def log_proxy_apply_step(*, rollout_id: int, run_token: str) -> None:
    rollout = APPLY.claim(rollout_id, run_token)
    if rollout is None:
        return
    pipeline = LogPipeline.objects.select_related("cluster").get(pk=rollout.pipeline_id)
    progress = partial(runs.progress, LogProxyRollout, rollout_id, run_token)
    result = log_proxy_apply(
        pipeline=pipeline, image=rollout.image, progress=progress, on_progress=rollout_reporter(progress)
    )
    with transaction.atomic():
        rollout = runs.locked_run(LogProxyRollout, rollout_id, run_token, RolloutStatus.APPLYING)
        if rollout is None:
            return
        rollout.applied = result.applied
        changes = {"image": rollout.image, "applied": result.applied, "replicas": result.replicas}
        if result.ok:
            runs.move(rollout, RolloutStatus.DEPLOYED, actor=None, verb="log_proxy.deployed", changes=changes)
        else:
            runs.finish(
                rollout, RolloutStatus.FAILED, verb="log_proxy.fail", error=result.message, changes=changes
            )


def log_proxy_fail(*, rollout_id: int, run_token: str, error: str) -> None:
    runs.fail(LogProxyRollout, rollout_id, run_token, error=error, verb="log_proxy.fail")


# --- the sweepers ----------------------------------------------------------------------------------


def _resume_task(rollout: LogProxyRollout):
    """The task that continues the rollout from its status (every step is idempotent)."""
    task = {
        RolloutStatus.QUEUED: tag_task,
        RolloutStatus.TAGGING: tag_task,
        RolloutStatus.BUILDING: build_task,
        RolloutStatus.BUILT: apply_task,
        RolloutStatus.APPLYING: apply_task,
    }.get(rollout.status)
    if task is None:
        return None
    return task, {"rollout_id": rollout.pk, "run_token": str(rollout.run_token)}


def log_proxy_rollouts_resume_stale() -> tuple[int, int]:
    return runs.resume_stale(
        LogProxyRollout,
        step_task=_resume_task,
        give_up=lambda pk, token, error: log_proxy_fail(rollout_id=pk, run_token=token, error=error),
        verb="log_proxy.resume",
        queued_statuses=frozenset({RolloutStatus.QUEUED, RolloutStatus.BUILT}),
    )


def log_proxy_rollouts_fail_stuck(*, older_than_seconds: int) -> int:
    error = _("The rollout stopped making progress (its worker was lost). Deploy again.")
    return runs.fail_stuck(
        LogProxyRollout,
        older_than_seconds,
        lambda pk, token: log_proxy_fail(rollout_id=pk, run_token=token, error=error),
    )
