"""Releases: GitLab tag → Jenkins build → image in the registry → Deployment image by digest.

The Release row holds the pipeline's state; Celery messages only trigger steps. Each step claims the
release under a row lock (status + run token), does its outside work idempotently — it first looks
for what an earlier attempt already did (the tag, the build carrying the run marker) — and moves the
release on. Production never builds: it deploys the digest of a test release a tester confirmed.
"""

import json
import logging
import re
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from clusters.models import ProjectEnvironment
from clusters.services.dashboards import dashboard_annotate, dashboards_enabled
from clusters.services.environments import environment_running_image, environment_set_image
from configs.services import config_change_set_clean
from deploys import recipes
from deploys.choices import ACTIVE_RELEASE_STATUSES, DeploymentKind, DeploymentOutcome, ReleaseStatus
from deploys.models import BuildRecipe, DeploymentRecord, Release
from deploys.services import builds
from deploys.services.release_config import (
    change_set,
    change_set_shown,
    config_apply,
    config_restore,
    config_undo,
)
from deploys.tasks import release_build as release_build_task
from deploys.tasks import release_build_poll as release_build_poll_task
from deploys.tasks import release_deploy as release_deploy_task
from deploys.tasks import release_stop_build as release_stop_build_task
from deploys.tasks import release_tag as release_tag_task
from deploys.tasks import rollback_deploy as rollback_deploy_task
from integrations.errors import IntegrationError
from observability import events
from observability.services import audit_record
from opsportal import metrics, runs
from opsportal.errors import StateConflict
from opsportal.notices import Notice, NoticeKind, notice_emit
from projects.access import Action, can, check
from projects.models import Project

logger = logging.getLogger(__name__)

CONSOLE_LIMIT = 512 * 1024  # characters of console kept on the release (the tail)
BUILD_QUEUE_TIMEOUT = builds.BUILD_QUEUE_TIMEOUT
# Git ref names we accept: what git allows, minus everything a shell or a URL could misread.
_BRANCH = re.compile(r"^(?![/-])(?!.*//)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$")


# --- small helpers -------------------------------------------------------------------------------


def release_version(*, user, now=None) -> str:
    """Timestamp plus the releaser's id: the git tag, the image tag and the version people see."""
    now = timezone.localtime(now or timezone.now())
    return f"{now:%Y%m%d-%H%M%S}-u{user.pk}"


def _refuse(*, actor, verb: str, target, project: Project, reason: str, remote_addr: str | None) -> None:
    """Record a refused attempt in its own transaction, so the record survives the refusal."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            verb=verb,
            target=target,
            project=project,
            changes={"reason": reason},
            remote_addr=remote_addr,
        )


def _environment(project: Project, environment: str) -> ProjectEnvironment:
    env = (
        ProjectEnvironment.objects.filter(project=project, environment=environment)
        .select_related("cluster")
        .first()
    )
    if env is None or not env.cluster_id or not env.live_objects:
        raise ValidationError(
            _("%(project)s is not on Kubernetes in %(env)s yet: file an onboarding ticket first.")
            % {"project": project.name, "env": environment}
        )
    return env


def _ensure_no_active_release(project: Project, environment: str) -> None:
    active = Release.objects.filter(
        project=project, environment=environment, status__in=ACTIVE_RELEASE_STATUSES
    ).first()
    if active is not None:
        raise StateConflict(
            _("Release %(version)s (#%(id)s) is in progress in %(env)s; wait for it or cancel it.")
            % {"version": active.version, "id": active.pk, "env": environment}
        )


def validate_branch(branch: str) -> str:
    branch = (branch or "").strip()
    if not _BRANCH.match(branch):
        raise ValidationError(
            {
                "branch": _("'%(branch)s' is not a branch name we accept: letters, digits and . _ / - only.")
                % {"branch": branch[:100]}
            }
        )
    return branch


def deployed_in_test(*, project: Project, image: str) -> bool:
    return DeploymentRecord.objects.filter(
        project=project, environment="test", image=image, outcome=DeploymentOutcome.SUCCEEDED
    ).exists()


def promotion_problem(*, actor, release: Release) -> str:
    """Why this test release may not go to production, or "" when it may."""
    if release.environment != "test":
        return _("Only a test release can be promoted to production.")
    if not release.image_digest:
        return _("Release %(v)s has no image.") % {"v": release.version}
    if release.status != ReleaseStatus.DEPLOYED:
        return _("Release %(v)s is %(s)s in test, not deployed.") % {
            "v": release.version,
            "s": release.get_status_display(),
        }
    if release.confirmed_by_id is None:
        return _("Release %(v)s has not been confirmed by a tester.") % {"v": release.version}
    if not deployed_in_test(project=release.project, image=release.image):
        return _("The image %(image)s never ran in test.") % {"image": release.image}
    return ""


# --- the pipeline's actions -------------------------------------------------------------------------


@transaction.atomic
def release_submit(
    *,
    actor,
    project: Project,
    branch: str,
    description: str = "",
    config_changes: list | None = None,
    remote_addr: str | None = None,
) -> Release:
    """Release a branch to test: tag it, build it, apply its Apollo change set (if any), deploy it."""
    check(actor, Action.RELEASE_TEST, project)
    branch = validate_branch(branch)
    changes = config_change_set_clean(project=project, env="test", items=config_changes or [])
    if not project.gitlab_repository:
        raise ValidationError({"branch": _("The project has no GitLab repository configured.")})
    _environment(project, "test")
    Project.objects.select_for_update().get(pk=project.pk)
    _ensure_no_active_release(project, "test")
    recipe = BuildRecipe.objects.filter(language=project.language).first()
    if recipe is None:
        raise ValidationError(
            _("There is no build recipe for %(lang)s yet; ask ops to add one.")
            % {"lang": project.get_language_display()}
        )
    release = Release.objects.create(
        project=project,
        environment="test",
        created_by=actor,
        branch=branch,
        description=description[:500],
        version=release_version(user=actor),
        recipe=recipe,
        image_repository=builds.image_repository(project.name),
        jenkins_job=project.name,
        config_changes=json.dumps(changes) if changes else "",
    )
    audit_record(
        actor=actor,
        verb="release.submit",
        target=release,
        project=project,
        changes={
            "branch": branch,
            "version": release.version,
            "environment": "test",
            **({"config_changes": change_set_shown(release)} if changes else {}),
        },
        remote_addr=remote_addr,
    )
    runs.publish(release)
    _queue(release_tag_task, release)
    return release


def release_promote(*, actor, release_id: int, remote_addr: str | None = None) -> Release:
    """Deploy the very image of a confirmed test release to production."""
    test_release = Release.objects.select_related("project").get(pk=release_id)
    project = test_release.project
    check(actor, Action.RELEASE_PROD, project)
    problem = promotion_problem(actor=actor, release=test_release)
    if problem:
        _refuse(
            actor=actor,
            verb="release.promote.refused",
            target=test_release,
            project=project,
            reason=problem,
            remote_addr=remote_addr,
        )
        raise StateConflict(problem)
    # The very change set that ran in test, checked against prod's settings (namespaces may differ).
    changes = config_change_set_clean(
        project=project,
        env="prod",
        items=[{**item, "delete": item["value"] is None} for item in change_set(test_release)],
    )
    with transaction.atomic():
        _environment(project, "prod")
        Project.objects.select_for_update().get(pk=project.pk)
        _ensure_no_active_release(project, "prod")
        release = Release.objects.create(
            project=project,
            environment="prod",
            created_by=actor,
            branch=test_release.branch,
            commit_sha=test_release.commit_sha,
            committed_at=test_release.committed_at,
            version=test_release.version,
            recipe=test_release.recipe,
            image_repository=test_release.image_repository,
            image_digest=test_release.image_digest,
            jenkins_job=test_release.jenkins_job,
            jenkins_build=test_release.jenkins_build,
            promoted_from=test_release,
            description=test_release.description,
            config_changes=test_release.config_changes if changes else "",
        )
        audit_record(
            actor=actor,
            verb="release.promote",
            target=release,
            project=project,
            changes={
                "from_release": test_release.pk,
                "image": release.image,
                **({"config_changes": change_set_shown(release)} if changes else {}),
            },
            remote_addr=remote_addr,
        )
        runs.publish(release)
        _queue(release_deploy_task, release)
    return release


def release_confirm(*, actor, release_id: int, remote_addr: str | None = None) -> Release:
    """A tester's (or QA's) word that a deployed test release works."""
    with transaction.atomic():
        release = runs.locked(Release, release_id)
        check(actor, Action.VIEW, release.project)
        problem, not_allowed = "", False
        tester_required = release.project.require_tester_confirmation
        if tester_required and actor.pk == release.created_by_id:
            problem = _("You released %(v)s yourself; a tester must confirm it.") % {"v": release.version}
        elif not (
            can(actor, Action.CONFIRM_RELEASE, release.project)
            or (not tester_required and can(actor, Action.RELEASE_TEST, release.project))
        ):
            problem, not_allowed = _("Only the project's testers or QA can confirm a release."), True
        elif release.environment != "test" or release.status != ReleaseStatus.DEPLOYED:
            problem = _("Only a deployed test release can be confirmed.")
        if not problem:
            if release.confirmed_by_id:
                return release
            release.confirmed_by, release.confirmed_at = actor, timezone.now()
            release.save()
            audit_record(
                actor=actor,
                verb="release.confirm",
                target=release,
                project=release.project,
                changes={"image": release.image},
                remote_addr=remote_addr,
            )
            runs.publish(release)
            return release
    _refuse(
        actor=actor,
        verb="release.confirm.refused",
        target=release,
        project=release.project,
        reason=problem,
        remote_addr=remote_addr,
    )
    if not_allowed:
        raise PermissionDenied(problem)
    raise StateConflict(problem)


@transaction.atomic
def release_cancel(*, actor, release_id: int, remote_addr: str | None = None) -> Release:
    release = runs.locked(Release, release_id)
    check(
        actor, Action.RELEASE_PROD if release.environment == "prod" else Action.RELEASE_TEST, release.project
    )
    if release.status == ReleaseStatus.CANCELLED:
        return release
    if release.status == ReleaseStatus.DEPLOYING:
        raise StateConflict(_("The rollout has started; roll back instead of cancelling."))
    building = release.status == ReleaseStatus.BUILDING and release.jenkins_build
    runs.move(release, ReleaseStatus.CANCELLED, actor=actor, verb="release.cancel", remote_addr=remote_addr)
    if building:
        _queue(release_stop_build_task, release)
    return release


def rollback_targets(*, project: Project, environment: str):
    """Earlier images that ran successfully here, newest first, without the one the Deployment has now."""
    history = DeploymentRecord.objects.filter(project=project, environment=environment)
    current = history.first()  # what the Deployment was last set to, whatever came of it
    if current is None:
        return history.none()
    return (
        history.filter(outcome=DeploymentOutcome.SUCCEEDED)
        .exclude(image=current.image)
        .select_related("release", "actor")
    )


def release_rollback(
    *, actor, project: Project, environment: str, record_id: int, remote_addr: str | None = None
) -> DeploymentRecord:
    """Put the image of an earlier successful deployment back on the environment."""
    check(actor, Action.RELEASE_PROD if environment == "prod" else Action.RELEASE_TEST, project)
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        target = rollback_targets(project=project, environment=environment).filter(pk=record_id).first()
        if target is None:
            raise ValidationError(
                {"record": _("Choose an earlier successful deployment of %(env)s.") % {"env": environment}}
            )
        _ensure_no_active_release(project, environment)
        _end_abandoned_rollouts(project, environment)
        record = DeploymentRecord.objects.create(
            project=project,
            environment=environment,
            kind=DeploymentKind.ROLLBACK,
            release=target.release,
            image=target.image,
            actor=actor,
        )
        audit_record(
            actor=actor,
            verb="release.rollback",
            target=record,
            project=project,
            changes={
                "environment": environment,
                "to_image": target.image,
                "to_release": target.release.version,
            },
            remote_addr=remote_addr,
        )
        events.publish(
            stream=events.project_stream(project.pk),
            type="release-changed",
            payload={"rollback": record.pk, "environment": environment},
        )
        runs.queue(rollback_deploy_task, record_id=record.pk)
    return record


def _end_record(record: DeploymentRecord, outcome: str, *, message: str, verb: str, project: Project) -> None:
    """End a running rollout record (locked by the caller) with its cause, audited."""
    record.outcome, record.message, record.finished_at = outcome, message, timezone.now()
    record.save(update_fields=["outcome", "message", "finished_at"])
    audit_record(
        actor=None,
        verb=verb,
        target=record,
        project=project,
        changes={"outcome": [DeploymentOutcome.RUNNING, outcome], "message": message[:500]},
    )


def _abandoned_cause(record: DeploymentRecord) -> str:
    """Why a "running" record has nobody behind it any more, or "" while its rollout may be alive."""
    if record.kind != DeploymentKind.ROLLBACK:
        if record.release.status not in ACTIVE_RELEASE_STATUSES:
            return _("Its release %(v)s ended (%(s)s) before the rollout finished.") % {
                "v": record.release.version,
                "s": record.release.get_status_display(),
            }
        return ""
    limit = runs.stuck_after(rollback_deploy_task)
    if record.created_at < timezone.now() - timedelta(seconds=limit):
        return _("The rollback's worker was lost (no result after %(s)s s).") % {"s": limit}
    return ""


def _end_abandoned_rollouts(project: Project, environment: str) -> None:
    """Refuse while a live rollout runs here; end the records whose run is gone, so that a record left
    behind by a dead worker never blocks a rollback."""
    running = (
        DeploymentRecord.objects.select_for_update()
        .filter(project=project, environment=environment, outcome=DeploymentOutcome.RUNNING)
        .select_related("release")
    )
    for record in running:
        cause = _abandoned_cause(record)
        if not cause:
            raise StateConflict(_("A rollout is running in %(env)s; wait for it.") % {"env": environment})
        _end_record(
            record,
            DeploymentOutcome.FAILED,
            message=cause,
            verb="release.deployment.abandoned",
            project=project,
        )


# --- tasks' bodies --------------------------------------------------------------------------------

# The steps of a release's run. A test release is tagged, built and deployed; a production release
# (a promotion) is deployed straight from submitted.
TAG = runs.Step(Release, ReleaseStatus.SUBMITTED, ReleaseStatus.TAGGING, "release.tag.start")
BUILD = runs.Step(Release, ReleaseStatus.BUILDING, ReleaseStatus.BUILDING, "release.build.start")
DEPLOY = runs.Step(Release, ReleaseStatus.BUILT, ReleaseStatus.DEPLOYING, "release.deploy.start")
DEPLOY_PROMOTION = runs.Step(
    Release, ReleaseStatus.SUBMITTED, ReleaseStatus.DEPLOYING, "release.deploy.start"
)


def _queue(task, release: Release, **kwargs) -> None:
    runs.queue(task, release_id=release.pk, run_token=str(release.run_token), **kwargs)


# The release status each step works in, and when that step started (opsportal_release_step_duration).
_STEP_OF_STATUS = {
    ReleaseStatus.TAGGING: "tag",
    ReleaseStatus.BUILDING: "build",
    ReleaseStatus.DEPLOYING: "deploy",
}


def _step_started(release: Release, step: str):
    if step == "deploy":
        record = (
            DeploymentRecord.objects.filter(release=release).exclude(kind=DeploymentKind.ROLLBACK).first()
        )
        return record.created_at if record is not None else release.started_at
    if step == "build":
        return release.build_started_at or release.started_at
    return release.started_at


def _step_ended(step: str, outcome: str, since) -> None:
    """Count a release step's duration where it ends. Recorded at once, not on commit: should the ending
    transaction roll back, the retried step is counted again (a rare overcount, never a lost step)."""
    if since is not None:
        metrics.release_step_observe(
            step=step, outcome=outcome, seconds=(timezone.now() - since).total_seconds()
        )


def release_fail(*, release_id: int, run_token: str, error: str) -> None:
    release = Release.objects.filter(pk=release_id).first()
    step = _STEP_OF_STATUS.get(release.status) if release is not None else None
    if runs.fail(Release, release_id, run_token, error=error, verb="release.fail") and step:
        _step_ended(step, "failed", _step_started(release, step))


@runs.on_end(Release)
def _end_release_rollouts(release: Release, status: str) -> None:
    """A release that ends ends the rollout it started: succeeded if it ended deployed, else failed with
    the release's cause. Left "running", the record would refuse every rollback of the environment."""
    deployed = status == ReleaseStatus.DEPLOYED
    outcome = DeploymentOutcome.SUCCEEDED if deployed else DeploymentOutcome.FAILED
    message = release.error or _("The release ended %(s)s before its rollout finished.") % {
        "s": release.get_status_display()
    }
    if deployed:
        _annotate(
            release.project,
            release.environment,
            text=_("Release %(v)s deployed (%(image)s)") % {"v": release.version, "image": release.image},
            tags=["release", release.environment, str(release.version)],
        )
    running = DeploymentRecord.objects.select_for_update().filter(
        release=release, outcome=DeploymentOutcome.RUNNING
    )
    for record in running.exclude(kind=DeploymentKind.ROLLBACK):
        _end_record(
            record,
            outcome,
            message="" if deployed else message,
            verb="release.deployment.end",
            project=release.project,
        )


def _notify(release: Release, kind: str, **context) -> None:
    """A workflow notice about ``release`` (sent once the transaction commits). The releaser is named for
    a failure or rollback; a release waiting for confirmation is for the testers, not its releaser."""
    waiting = kind == NoticeKind.RELEASE_AWAITING_CONFIRMATION
    notice_emit(
        Notice(
            kind=kind,
            project_id=release.project_id,
            environment=release.environment,
            path=reverse("release-detail", args=[release.project.name, release.pk]),
            actor_id=release.created_by_id if waiting else None,
            user_ids=() if waiting else (release.created_by_id,),
            context={"version": str(release.version), **context},
        )
    )


@runs.on_end(Release)
def _notify_end(release: Release, status: str) -> None:
    """A test release deployed now waits for a tester; a failed one is its releaser's and owner's turn."""
    if status == ReleaseStatus.FAILED:
        _notify(release, NoticeKind.RELEASE_FAILED, error=release.error[:300])
    elif status == ReleaseStatus.DEPLOYED and release.environment == "test":
        _notify(release, NoticeKind.RELEASE_AWAITING_CONFIRMATION)


def _annotate(project: Project, environment: str, *, text: str, tags: list[str]) -> None:
    """A marker on the environment's Grafana dashboard, queued on commit; best effort (never fails the
    release: the task logs and counts what it cannot write)."""
    if not dashboards_enabled():
        return
    env = ProjectEnvironment.objects.filter(project=project, environment=environment).first()
    if env is not None:
        dashboard_annotate(environment=env, text=text, tags=tags)


_jenkins = builds.jenkins_client


def release_tag(*, release_id: int, run_token: str) -> None:
    release = TAG.claim(release_id, run_token)
    if release is None:
        return
    tag = builds.tag_run(
        release,
        repository=release.project.gitlab_repository,
        message=f"OpsPortal release {release.version} by {release.created_by.get_username()}",
    )
    with transaction.atomic():
        release = runs.locked_run(Release, release_id, run_token, ReleaseStatus.TAGGING)
        if release is None:
            return
        release.commit_sha = tag.commit_sha
        release.committed_at = parse_datetime(tag.committed_date) if tag.committed_date else None
        runs.move(
            release,
            ReleaseStatus.BUILDING,
            actor=None,
            verb="release.tag",
            changes={"tag": release.version, "commit": tag.commit_sha, "created": tag.created},
        )
        _step_ended("tag", "succeeded", release.started_at)
        _queue(release_build_task, release)


def _job_config(release: Release, template_xml: str) -> str:
    return builds.job_config(
        template_xml,
        description=f"Managed by OpsPortal for project {release.project.name}. Changes here are overwritten.",
        build_shell=release.recipe.build_shell,
    )


def _build_parameters(release: Release, git_url: str) -> dict[str, str]:
    environment = ProjectEnvironment.objects.get(project=release.project, environment="test")
    port = int((environment.spec.get("request") or {}).get("container_port") or 8080)
    return builds.build_parameters(
        recipe=release.recipe,
        language=release.project.language,
        name=release.project.name,
        port=port,
        git_url=git_url,
        tag=release.version,
        image=f"{release.image_repository}:{release.version}",
        marker=f"{release.pk}-{release.run_token}",
    )


def release_build(*, release_id: int, run_token: str) -> None:
    """Start the release's Jenkins build (or find the one an earlier attempt started) and hand it to
    the polls. Nothing here waits for the build: each poll is its own short task."""
    release = BUILD.claim(release_id, run_token)
    if release is None:
        return
    number, queue_id = builds.start_build(
        _jenkins(),
        release,
        language=release.project.language,
        config=lambda xml: _job_config(release, xml),
        marker=f"{release.pk}-{release.run_token}",
        repository=release.project.gitlab_repository,
        parameters=lambda git_url: _build_parameters(release, git_url),
    )
    with transaction.atomic():
        release = runs.locked_run(Release, release_id, run_token, ReleaseStatus.BUILDING)
        if release is None:
            return
        release.jenkins_queue_id = queue_id
        release.build_started_at = release.build_started_at or timezone.now()
        release.save(update_fields=["jenkins_queue_id", "build_started_at", "updated_at"])
        if number is not None and release.jenkins_build is None:
            _record_build(release, number)
        _queue(release_build_poll_task, release, poll=release.build_polls)


def _record_build(release: Release, number: int) -> None:
    release.jenkins_build = number
    release.save(update_fields=["jenkins_build", "updated_at"])
    audit_record(
        actor=None,
        verb="release.build",
        target=release,
        project=release.project,
        changes={"job": release.jenkins_job, "build": number},
    )
    runs.publish(release)


def release_build_poll(*, release_id: int, run_token: str, poll: int) -> None:
    """One look at the release's build: append the new console, then end the build step (built or
    failed) or queue the next look after RELEASE_BUILD_POLL_SECONDS.

    The look counts as done only if the release is still at look number ``poll`` when it is written
    (a conditional UPDATE): a redelivered or duplicate poll message then does nothing, so no console
    line is appended twice and no second chain of polls runs on."""
    current = Release.objects.filter(
        pk=release_id, run_token=run_token, status=ReleaseStatus.BUILDING, build_polls=poll
    )
    release = current.select_related("project").first()
    if release is None:
        return
    look = builds.look_at_build(_jenkins(), release, image_name=release.project.name, tag=release.version)
    with transaction.atomic():
        console = builds.write_look(current, release, look, poll=poll, console_limit=CONSOLE_LIMIT)
        if console is None:
            return
        release = runs.locked(Release, release_id)
        if look.number is not None and release.jenkins_build is None:
            _record_build(release, look.number)
        if look.console:
            runs.publish(release, "release-console", text=look.console[-65536:])
        if look.done or look.timed_out:
            succeeded = look.done and not look.timed_out and look.result == "SUCCESS"
            _step_ended("build", "succeeded" if succeeded else "failed", _step_started(release, "build"))
        if look.timed_out:
            runs.finish(release, ReleaseStatus.FAILED, verb="release.fail", error=look.timed_out)
        elif not look.done:
            _queue(
                release_build_poll_task,
                release,
                poll=poll + 1,
                countdown=settings.RELEASE_BUILD_POLL_SECONDS,
            )
        elif look.result != "SUCCESS":
            tail = "\n".join(console.splitlines()[-20:])
            error = _("Jenkins build #%(n)s ended %(result)s.\n%(tail)s") % {
                "n": release.jenkins_build,
                "result": look.result,
                "tail": tail,
            }
            runs.finish(release, ReleaseStatus.FAILED, verb="release.fail", error=error)
        else:
            release.image_digest = look.digest
            changes = {"image": release.image}
            runs.move(release, ReleaseStatus.BUILT, actor=None, verb="release.built", changes=changes)
            _queue(release_deploy_task, release)


def release_stop_build(*, release_id: int, run_token: str) -> None:
    release = Release.objects.get(pk=release_id)
    if release.jenkins_build:
        _jenkins().stop(release.jenkins_job, release.jenkins_build)


def _deploy_image(*, project: Project, environment: str, image: str, on_progress) -> tuple[bool, str, str]:
    """Set the Deployment's image and follow the rollout. Returns (ok, message, previous image)."""
    rollout = environment_set_image(
        environment=_environment(project, environment), image=image, on_progress=on_progress
    )
    return rollout.ok, rollout.message, rollout.previous_image


def _rollout_publisher(project_id: int, **ids):
    def on_progress(rollout) -> None:
        events.publish(
            stream=events.project_stream(project_id),
            type="release-rollout",
            payload={
                **ids,
                "desired": rollout.desired,
                "updated": rollout.updated,
                "ready": rollout.ready,
                "available": rollout.available,
                "old": max(rollout.total - rollout.updated, 0),
                "message": rollout.message,
            },
        )

    return on_progress


def _rollout_record(release: Release) -> DeploymentRecord:
    """The release's one rollout record: a resumed deploy step finds the one it started."""
    record, _created = DeploymentRecord.objects.get_or_create(
        release=release,
        environment=release.environment,
        kind=DeploymentKind.PROMOTION if release.environment == "prod" else DeploymentKind.RELEASE,
        defaults={"project": release.project, "image": release.image, "actor": release.created_by},
    )
    return record


def release_deploy(*, release_id: int, run_token: str) -> None:
    promotion = Release.objects.filter(pk=release_id, environment="prod").exists()
    release = (DEPLOY_PROMOTION if promotion else DEPLOY).claim(release_id, run_token)
    if release is None:
        return
    if release.environment == "prod":
        # Checked again here, so that no path — page, API or a hand-sent task — puts an unconfirmed image
        # in production.
        source = release.promoted_from
        problem = (
            _("A production release must come from a confirmed test release.")
            if source is None
            else (
                promotion_problem(actor=None, release=source)
                or (
                    _("The image differs from the confirmed test release's.")
                    if source.image != release.image
                    else (
                        _("The configuration change set differs from the confirmed test release's.")
                        if change_set(source) != change_set(release)
                        else ""
                    )
                )
            )
        )
        if problem:
            _refuse(
                actor=None,
                verb="release.deploy.refused",
                target=release,
                project=release.project,
                reason=problem,
                remote_addr=None,
            )
            release_fail(release_id=release_id, run_token=run_token, error=problem)
            return
    # The configuration goes first: a change set Apollo refuses must not leave the new image running
    # on the old configuration.
    cause = config_apply(release)
    if cause:
        release_fail(release_id=release_id, run_token=run_token, error=cause)
        return
    with transaction.atomic():
        record = _rollout_record(release)
    ok, message, previous = _deploy_image(
        project=release.project,
        environment=release.environment,
        image=release.image,
        on_progress=_rollout_publisher(release.project_id, release=release.pk),
    )
    note = ""
    if not ok:
        # The image did not roll out: the configuration it was released with goes back too, or the
        # error says plainly which Apollo release is still current.
        note = config_undo(release)
        message = f"{message} {note}" if note else message
    with transaction.atomic():
        record = DeploymentRecord.objects.select_for_update().get(pk=record.pk)
        record.previous_image = record.previous_image or previous
        record.outcome = DeploymentOutcome.SUCCEEDED if ok else DeploymentOutcome.FAILED
        record.message, record.finished_at = message, timezone.now()
        record.save()
        _step_ended("deploy", "succeeded" if ok else "failed", record.created_at)
        release = runs.locked_run(Release, release_id, run_token, ReleaseStatus.DEPLOYING)
        if release is None:
            return
        if ok:
            runs.move(
                release,
                ReleaseStatus.DEPLOYED,
                actor=None,
                verb="release.deploy",
                changes={"image": release.image, "previous": record.previous_image},
            )
            return
        runs.finish(
            release,
            ReleaseStatus.FAILED,
            verb="release.deploy.fail",
            error=message,
            changes={"config": note} if note else None,
        )
        auto = release.project.auto_rollback and record.previous_image
    if auto:
        release_rollback_auto(release, record)


def release_rollback_auto(
    release: Release, failed: DeploymentRecord, *, reason: str = "", changes: dict | None = None
) -> DeploymentRecord | None:
    """Put back the image ``failed`` replaced, when it had run successfully here; the rollback record
    carries ``reason``. Returns the rollback's record, or None when there is nothing to go back to."""
    target = DeploymentRecord.objects.filter(
        project=release.project,
        environment=release.environment,
        image=failed.previous_image,
        outcome=DeploymentOutcome.SUCCEEDED,
    ).first()
    if target is None or not failed.previous_image:
        return None
    with transaction.atomic():
        record = DeploymentRecord.objects.create(
            project=release.project,
            environment=release.environment,
            kind=DeploymentKind.ROLLBACK,
            release=target.release,
            image=target.image,
            actor=release.created_by,
            message=reason or _("automatic rollback after a failed rollout"),
        )
        audit_record(
            actor=None,
            verb="release.rollback.auto",
            target=record,
            project=release.project,
            changes={"to_image": target.image, "failed_release": release.pk, **(changes or {})},
        )
        runs.queue(rollback_deploy_task, record_id=record.pk)
    return record


def rollback_deploy(*, record_id: int) -> None:
    with transaction.atomic():
        record = DeploymentRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None or record.outcome != DeploymentOutcome.RUNNING:
            return
        project = Project.objects.get(pk=record.project_id)
    # The configuration the target release ran with first; if it cannot come back, neither does the image.
    record = DeploymentRecord.objects.select_related("release", "actor", "project").get(pk=record_id)
    cause = config_restore(record)
    if cause:
        rollback_failed(record_id=record_id, error=cause)
        return
    ok, message, previous = _deploy_image(
        project=project,
        environment=record.environment,
        image=record.image,
        on_progress=_rollout_publisher(project.pk, rollback=record.pk),
    )
    with transaction.atomic():
        record = DeploymentRecord.objects.select_for_update().get(pk=record_id)
        if record.outcome != DeploymentOutcome.RUNNING:
            return
        record.previous_image = previous
        record.outcome = DeploymentOutcome.SUCCEEDED if ok else DeploymentOutcome.FAILED
        record.message, record.finished_at = message, timezone.now()
        record.save()
        _step_ended("rollback", "succeeded" if ok else "failed", record.created_at)
        audit_record(
            actor=None,
            verb="release.rollback.succeed" if ok else "release.rollback.fail",
            target=record,
            project=project,
            changes={"image": record.image, "error": message},
        )
        if ok:
            _annotate(
                project,
                record.environment,
                text=_("Rolled back to %(image)s") % {"image": record.image},
                tags=["rollback", record.environment],
            )
            # Whatever release ran here before is now rolled back.
            replaced = (
                Release.objects.select_for_update()
                .filter(
                    project=project,
                    environment=record.environment,
                    status__in=[ReleaseStatus.DEPLOYED, ReleaseStatus.FAILED],
                )
                .exclude(pk=record.release_id)
                .order_by("-created_at")
                .first()
            )
            if replaced is not None and replaced.created_at > record.release.created_at:
                replaced.project = project
                runs.move(
                    replaced,
                    ReleaseStatus.ROLLED_BACK,
                    actor=None,
                    verb="release.rolled_back",
                    changes={"by_rollback": record.pk},
                )
                _notify(
                    replaced,
                    NoticeKind.RELEASE_ROLLED_BACK,
                    reason=_("rolled back to %(image)s") % {"image": record.image},
                )
        events.publish(
            stream=events.project_stream(project.pk),
            type="release-changed",
            payload={"rollback": record.pk, "environment": record.environment, "ok": ok},
        )


def rollback_failed(*, record_id: int, error: str) -> None:
    with transaction.atomic():
        record = DeploymentRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None or record.outcome != DeploymentOutcome.RUNNING:
            return
        record.outcome, record.message, record.finished_at = DeploymentOutcome.FAILED, error, timezone.now()
        record.save()
        _step_ended("rollback", "failed", record.created_at)
        audit_record(
            actor=None,
            verb="release.rollback.fail",
            target=record,
            project=record.project,
            changes={"error": error[:500]},
        )


@transaction.atomic
def recipe_update(
    *, actor, language: str, dockerfile: str, build_shell: str, comment: str, remote_addr: str | None = None
) -> BuildRecipe:
    """Save a new version of a language's recipe (ops). Earlier versions stay as history."""
    from projects.access import is_ops

    if not is_ops(actor):
        raise Http404("No such recipe.")  # recipes are ops-only: not there for anyone else
    errors = {
        k: v
        for k, v in {
            "dockerfile": recipes.dockerfile_errors(dockerfile),
            "build_shell": recipes.build_shell_errors(build_shell),
        }.items()
        if v
    }
    if errors:
        raise ValidationError(errors)
    current = BuildRecipe.objects.select_for_update().filter(language=language).first()
    if current and current.dockerfile == dockerfile and current.build_shell == build_shell:
        return current
    recipe = BuildRecipe.objects.create(
        language=language,
        version=(current.version + 1) if current else 1,
        dockerfile=dockerfile,
        build_shell=build_shell,
        comment=comment[:200],
        created_by=actor,
    )
    audit_record(
        actor=actor,
        verb="recipe.update",
        target=recipe,
        changes={
            "language": language,
            "version": recipe.version,
            "comment": comment[:200],
            "dockerfile_changed": bool(current and current.dockerfile != dockerfile),
            "build_shell_changed": bool(current and current.build_shell != build_shell),
        },
        remote_addr=remote_addr,
    )
    return recipe


def _resume_task(release: Release):
    """The task that continues the release from the step it is in (every step is idempotent: the tag
    is ensured, the build found by its run marker, the rollout record reused)."""
    if release.status == ReleaseStatus.SUBMITTED:
        task = release_deploy_task if release.environment == "prod" else release_tag_task
    else:
        task = {
            ReleaseStatus.TAGGING: release_tag_task,
            ReleaseStatus.BUILDING: release_build_task,
            ReleaseStatus.BUILT: release_deploy_task,
            ReleaseStatus.DEPLOYING: release_deploy_task,
        }.get(release.status)
    if task is None:
        return None
    return task, {"release_id": release.pk, "run_token": str(release.run_token)}


def release_give_up(*, release_id: int, run_token: str, error: str) -> None:
    """End a release nobody can continue. A deploying one is first compared with what the cluster runs:
    if its Deployment has rolled out the release's digest, the release did deploy — only its worker
    died before saying so — and it ends deployed, not failed."""
    release = Release.objects.select_related("project").filter(pk=release_id, run_token=run_token).first()
    if release is not None and release.status == ReleaseStatus.DEPLOYING and release.image_digest:
        try:
            running = environment_running_image(
                environment=_environment(release.project, release.environment)
            )
        except (IntegrationError, ValidationError) as exc:
            logger.warning("release %s not reconciled with its cluster: %s", release_id, exc)
            running = None
        if running is not None and running.rolled_out and running.image == release.image:
            with transaction.atomic():
                release = runs.locked_run(Release, release_id, run_token, ReleaseStatus.DEPLOYING)
                if release is None:
                    return
                _rollout_record(release)
                runs.move(
                    release,
                    ReleaseStatus.DEPLOYED,
                    actor=None,
                    verb="release.deploy.reconciled",
                    changes={"image": release.image, "cause": error[:500]},
                )
            return
    release_fail(release_id=release_id, run_token=run_token, error=error)


def releases_resume_stale() -> tuple[int, int]:
    """Resume releases whose worker was lost (a stale heartbeat) from their step; give up the others."""
    return runs.resume_stale(
        Release,
        step_task=_resume_task,
        give_up=lambda pk, token, error: release_give_up(release_id=pk, run_token=token, error=error),
        verb="release.resume",
        queued_statuses=frozenset({ReleaseStatus.SUBMITTED, ReleaseStatus.BUILT}),
    )


def releases_fail_stuck(*, older_than_seconds: int) -> int:
    """The last resort: end runs active for longer than any step may take, without progress."""
    error = _("The release stopped making progress (its worker was lost). Release again.")
    fail = partial(release_give_up, error=error)
    return runs.fail_stuck(
        Release, older_than_seconds, lambda pk, token: fail(release_id=pk, run_token=token)
    )
