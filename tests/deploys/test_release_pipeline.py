"""Releases end to end: the GitLab and Jenkins stand-ins, the real registry and the real control plane.

The main path (test, confirm, promote, roll back) goes through the broker and a real worker, as in
production. The other tests apply the steps as Celery tasks in this process, in order, so each sees
exactly what every step did."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from kubernetes import client as k8s

from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, Release
from deploys.tasks import release_build, release_deploy, release_tag, rollback_deploy
from integrations.registry import RegistryClient
from observability.models import AuditEvent
from opsportal import dora
from opsportal.errors import StateConflict
from tests.helpers.releases import git_tags, release_to_test, run, wait_until_ended
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]


def deployment_image(kube_cluster, onboarded, environment: str) -> str:
    deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment(
        onboarded.project.name, onboarded.namespace(environment)
    )
    return deployment.spec.template.spec.containers[0].image


def _ended(record: DeploymentRecord) -> bool:
    record.refresh_from_db()
    return record.outcome != DeploymentOutcome.RUNNING


def _through_worker(release: Release) -> Release:
    """The worker takes every step the release's submit (or promote) queued; wait for the end."""
    wait_until_ended(release, since=time.monotonic(), timeout=300)
    return release


@pytest.mark.django_db(transaction=True)  # on_commit queues the steps to the worker
def test_release_to_test_confirm_promote_and_rollback(people, onboarded, kube_cluster, pipeline_workers):
    pipeline_workers("pipeline")
    first = _through_worker(
        services.release_submit(actor=people.developer, project=onboarded.project, branch="main")
    )
    assert first.status == ReleaseStatus.DEPLOYED, first.error
    # The version is the tag, and the tag really exists in the git repository.
    assert first.version.endswith(f"-u{people.developer.pk}")
    assert first.version in git_tags(onboarded)
    # The Jenkins job was copied from the Go template and really ran the build shell.
    job = onboarded.pipeline.jenkins.jobs[onboarded.project.name]
    assert "git clone" in job.config_xml and "IMAGE_BUILDER" in job.config_xml
    assert "==> Building and pushing" in first.console
    # The image with that tag is in the registry, and test runs it by digest.
    registry = RegistryClient(onboarded.pipeline.registry.url)
    assert registry.resolve(onboarded.project.name, first.version).digest == first.image_digest
    assert deployment_image(kube_cluster, onboarded, "test") == first.image
    assert first.image.startswith(f"{onboarded.pipeline.registry.host}/{onboarded.project.name}@sha256:")

    services.release_confirm(actor=people.tester, release_id=first.pk)
    prod_first = _through_worker(services.release_promote(actor=people.developer, release_id=first.pk))
    assert prod_first.status == ReleaseStatus.DEPLOYED, prod_first.error
    assert deployment_image(kube_cluster, onboarded, "prod") == first.image

    second = _through_worker(
        services.release_submit(
            actor=people.developer, project=onboarded.project, branch="main", description="second"
        )
    )
    assert second.status == ReleaseStatus.DEPLOYED, second.error
    services.release_confirm(actor=people.qa, release_id=second.pk)
    prod_second = _through_worker(services.release_promote(actor=people.owner, release_id=second.pk))
    assert deployment_image(kube_cluster, onboarded, "prod") == second.image

    target = DeploymentRecord.objects.get(release=prod_first)
    record = services.release_rollback(
        actor=people.developer, project=onboarded.project, environment="prod", record_id=target.pk
    )
    until("the worker to roll back", lambda: _ended(record), timeout=120)
    assert record.outcome == DeploymentOutcome.SUCCEEDED, record.message
    assert record.previous_image == second.image
    assert deployment_image(kube_cluster, onboarded, "prod") == first.image
    prod_second.refresh_from_db()
    assert prod_second.status == ReleaseStatus.ROLLED_BACK

    verbs = set(AuditEvent.objects.filter(project=onboarded.project).values_list("verb", "actor_name"))
    for expected in [
        ("release.submit", people.developer.username),
        ("release.tag", "system"),
        ("release.build", "system"),
        ("release.built", "system"),
        ("release.deploy", "system"),
        ("release.confirm", people.tester.username),
        ("release.confirm", people.qa.username),
        ("release.promote", people.developer.username),
        ("release.rollback", people.developer.username),
        ("release.rollback.succeed", "system"),
    ]:
        assert expected in verbs, expected

    # The same history as DORA reads it. The commit time came with the tag and went along the promotion.
    first.refresh_from_db()
    prod_first.refresh_from_db()
    assert first.committed_at is not None and prod_first.committed_at == first.committed_at
    assert first.committed_at <= first.created_at
    period = dora.Period(start=first.created_at, end=timezone.now() + timedelta(seconds=1))
    _project, report = dora.dora_project(
        user=people.developer, name=onboarded.project.name, environment="prod", period=period
    )
    # Two promotions; the second was rolled back, and the rollback's end restored production.
    assert report["deployment_frequency"]["deployments"] == 2
    assert report["changes"][0]["record_id"] == target.pk
    lead_time = (target.finished_at - first.committed_at).total_seconds()
    assert report["changes"][0]["lead_time_seconds"] == lead_time
    assert report["change_failure_rate"]["failed"] == 1
    assert report["change_failure_rate"]["causes"]["rolled_back"] == 1
    restore = (record.finished_at - record.created_at).total_seconds()  # from the rollback's start
    assert report["time_to_restore"]["median_seconds"] == restore


def test_refusals(people, onboarded, kube_cluster):
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    before = deployment_image(kube_cluster, onboarded, "prod")

    # Production without a tester's confirmation.
    with pytest.raises(StateConflict, match="not been confirmed"):
        services.release_promote(actor=people.developer, release_id=release.pk)
    assert AuditEvent.objects.filter(verb="release.promote.refused", actor=people.developer).exists()
    # The releaser cannot confirm their own release when the project requires a tester.
    with pytest.raises(StateConflict, match="yourself"):
        services.release_confirm(actor=people.developer, release_id=release.pk)
    assert AuditEvent.objects.filter(verb="release.confirm.refused").exists()
    # A digest that never ran in test, sent straight to the deploy task.
    forged = Release.objects.create(
        project=onboarded.project,
        environment="prod",
        created_by=people.developer,
        version="forged",
        image_repository=release.image_repository,
        image_digest="sha256:" + "0" * 64,
        promoted_from=release,
    )
    forged = run(release_deploy, forged)
    assert forged.status == ReleaseStatus.FAILED
    assert AuditEvent.objects.filter(verb="release.deploy.refused", target_id=str(forged.pk)).exists()
    assert deployment_image(kube_cluster, onboarded, "prod") == before

    # A second release to the same environment while one is in progress.
    services.release_submit(actor=people.developer, project=onboarded.project, branch="main")
    with pytest.raises(StateConflict, match="in progress"):
        services.release_submit(actor=people.developer, project=onboarded.project, branch="main")


@pytest.mark.parametrize(
    "branch",
    ["main;touch /tmp/pwned-opsportal", "$(touch /tmp/pwned-opsportal)", "a b", "../x", "-rf", "main`id`"],
)
def test_branch_names_with_shell_characters_are_refused(people, onboarded, branch):
    with pytest.raises(ValidationError) as refused:
        services.release_submit(actor=people.developer, project=onboarded.project, branch=branch)
    assert "branch" in refused.value.message_dict
    assert not Release.objects.exists()
    assert not Path("/tmp/pwned-opsportal").exists()


def test_jenkins_500s_are_retried_and_the_release_succeeds(people, onboarded, settings):
    settings.INTEGRATION_MAX_RETRIES = 3
    onboarded.pipeline.jenkins.inject_fault(r"buildWithParameters", status=500, count=2)
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    marker = f"{release.pk}-{release.run_token}"
    builds = onboarded.pipeline.jenkins.jobs[onboarded.project.name].builds.values()
    assert [b.number for b in builds if dict(b.params).get("OPSPORTAL_RUN") == marker] == [
        release.jenkins_build
    ]


def test_failed_build_fails_the_release_with_the_console_tail(people, onboarded):
    from deploys.models import BuildRecipe

    recipe = BuildRecipe.objects.filter(language="go").first()
    broken = recipe.build_shell.replace(
        'echo "==> Compiling"', 'echo "==> Compiling"\necho "undefined: Handler" >&2; exit 2'
    )
    services.recipe_update(
        actor=people.ops, language="go", dockerfile=recipe.dockerfile, build_shell=broken, comment="break it"
    )
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.FAILED
    assert "FAILURE" in release.error
    assert "undefined: Handler" in release.error  # the console tail is shown
    assert release.recipe.version == recipe.version + 1
    assert not DeploymentRecord.objects.filter(release=release).exists()


def test_an_empty_prestop_helper_setting_fails_the_release_with_what_to_set(people, onboarded, settings):
    settings.OPSPORTAL_PRESTOP_HELPER_IMAGE = ""
    release = release_to_test(people, onboarded)
    assert release.status == ReleaseStatus.FAILED
    assert "The build cannot start" in release.error
    assert "OPSPORTAL_PRESTOP_HELPER_IMAGE" in release.error
    assert "Internal error" not in release.error
    assert release.jenkins_build is None  # nothing was started


def test_rollout_that_never_becomes_ready_fails_and_rollback_works(people, onboarded, kube_cluster):
    good = release_to_test(people, onboarded)
    assert good.status == ReleaseStatus.DEPLOYED
    namespace, name = onboarded.namespace("test"), onboarded.project.name
    api = kube_cluster.api_client
    # No room for one more pod, and a short deadline: the next rollout cannot progress.
    running = len(
        k8s.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}")
        .items
    )
    k8s.CoreV1Api(api).create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "full"}, "spec": {"hard": {"pods": str(running)}}}
    )
    k8s.AppsV1Api(api).patch_namespaced_deployment(name, namespace, {"spec": {"progressDeadlineSeconds": 5}})

    stuck = release_to_test(people, onboarded)
    assert stuck.status == ReleaseStatus.FAILED
    assert "ProgressDeadlineExceeded" in stuck.error
    assert DeploymentRecord.objects.get(release=stuck).outcome == DeploymentOutcome.FAILED

    roll_test_back_to(good, people, onboarded, kube_cluster)
    stuck.refresh_from_db()
    assert stuck.status == ReleaseStatus.ROLLED_BACK


def test_apiserver_unreachable_during_deploy_fails_the_rollout_and_rollback_works(
    people, onboarded, kube_cluster, settings
):
    from sandbox.procs import free_port

    settings.INTEGRATION_MAX_RETRIES = 1
    good = release_to_test(people, onboarded)
    assert good.status == ReleaseStatus.DEPLOYED, good.error
    cluster = onboarded.clusters["test"]
    real_url = cluster.api_url
    release = services.release_submit(actor=people.developer, project=onboarded.project, branch="main")
    release = run(release_build, run(release_tag, release))
    assert release.status == ReleaseStatus.BUILT, release.error
    type(cluster).objects.filter(pk=cluster.pk).update(api_url=f"https://127.0.0.1:{free_port()}")
    try:
        release = run(release_deploy, release)
    finally:
        type(cluster).objects.filter(pk=cluster.pk).update(api_url=real_url)
    assert release.status == ReleaseStatus.FAILED
    record = DeploymentRecord.objects.get(release=release)
    assert record.outcome == DeploymentOutcome.FAILED, "the release ended; its rollout must not stay running"
    assert record.message and record.finished_at
    assert AuditEvent.objects.filter(verb="release.deployment.end", target_id=str(record.pk)).exists()

    roll_test_back_to(good, people, onboarded, kube_cluster)


def roll_test_back_to(good: Release, people, onboarded, kube_cluster) -> DeploymentRecord:
    """Roll test back to ``good``'s image (the developer asks, the rollback task runs here)."""
    target = DeploymentRecord.objects.get(release=good, environment="test")
    record = services.release_rollback(
        actor=people.developer, project=onboarded.project, environment="test", record_id=target.pk
    )
    rollback_deploy.apply(kwargs={"record_id": record.pk})
    record.refresh_from_db()
    assert record.outcome == DeploymentOutcome.SUCCEEDED, record.message
    assert deployment_image(kube_cluster, onboarded, "test") == good.image
    return record
