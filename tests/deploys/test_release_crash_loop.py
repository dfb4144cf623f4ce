"""A release whose new pods crash-loop (or are OOMKilled) fails with that cause as soon as the kubelet
says so, instead of waiting out the rollout's deadline, and rolls back on its own where the project
has auto-rollback on.

A real worker runs the release; this test plays the kubelet: when the rollout's new pods are up, it
writes the status a crash-looping container gets (status subresource, real apiserver)."""

import time

import pytest
from kubernetes import client as k8s

from deploys import services
from deploys.choices import DeploymentKind, DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, Release
from observability.models import AuditEvent
from tests.helpers.kubelet import crash_loop_status, patch_status
from tests.helpers.releases import hold_rollouts, status, wait_until_ended
from tests.polling import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]

HOLD_SECONDS = 20  # the new pods stay unavailable this long, so the rollout is open when they crash


def _new_pods(kube_cluster, onboarded, image: str) -> list[k8s.V1Pod]:
    pods = k8s.CoreV1Api(kube_cluster.api_client).list_namespaced_pod(
        onboarded.namespace("test"), label_selector=f"app.kubernetes.io/name={onboarded.project.name}"
    )
    return [
        p
        for p in pods.items
        if p.spec.containers[0].image == image
        and p.status.phase == "Running"
        and not p.metadata.deletion_timestamp
    ]


def _deploying(release: Release) -> Release | None:
    release.refresh_from_db()
    return release if release.status == ReleaseStatus.DEPLOYING and release.image else None


def _crash_new_pods(kube_cluster, onboarded, release: Release, **status_fields) -> list[str]:
    until("the release to deploy", lambda: _deploying(release), timeout=240)
    pods = until(
        "the rollout's new pods", lambda: _new_pods(kube_cluster, onboarded, release.image), timeout=60
    )
    for pod in pods:
        patch_status(
            kube_cluster,
            onboarded.namespace("test"),
            pod.metadata.name,
            crash_loop_status(pod, **status_fields),
        )
    return [p.metadata.name for p in pods]


def _deployment_image(kube_cluster, onboarded) -> str:
    deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment(
        onboarded.project.name, onboarded.namespace("test")
    )
    return deployment.spec.template.spec.containers[0].image


def test_a_crash_looping_release_fails_with_its_cause_and_rolls_back(
    people, onboarded, kube_cluster, pipeline_workers
):
    pipeline_workers("crashloop", env={"RELEASE_POD_CHECK_SECONDS": "1"})
    project = onboarded.project
    good = services.release_submit(actor=people.developer, project=project, branch="main")
    wait_until_ended(good, since=time.monotonic(), timeout=300)
    assert status(good) == ReleaseStatus.DEPLOYED, good.error
    project.auto_rollback = True
    project.save(update_fields=["auto_rollback"])
    hold_rollouts(onboarded, "test", HOLD_SECONDS)

    bad = services.release_submit(
        actor=people.developer, project=project, branch="main", description="crashes"
    )
    crashed = _crash_new_pods(
        kube_cluster,
        onboarded,
        bad,
        restarts=3,
        exit_code=1,
        message="back-off 40s restarting failed container",
    )
    started = time.monotonic()
    wait_until_ended(bad, since=started, timeout=60)
    bad.refresh_from_db()
    assert bad.status in (ReleaseStatus.FAILED, ReleaseStatus.ROLLED_BACK), bad.status
    # Well inside the Deployment's progress deadline: the pods' status ended it, not a timeout.
    assert time.monotonic() - started < 30
    assert any(
        f"{name}: CrashLoopBackOff, restarted 3 times, last exit 1: back-off 40s restarting failed container"
        in bad.error
        for name in crashed
    ), bad.error
    assert "previous container's log" in bad.error  # exit 1: the process exits on its own
    record = DeploymentRecord.objects.get(release=bad)
    assert record.outcome == DeploymentOutcome.FAILED and "CrashLoopBackOff" in record.message
    assert AuditEvent.objects.filter(verb="release.deploy.fail", target_id=str(bad.pk)).exists()

    # Auto-rollback: the worker puts the last good image back.
    rollback = until(
        "the automatic rollback to end",
        lambda: DeploymentRecord.objects.filter(
            project=project, kind=DeploymentKind.ROLLBACK, outcome=DeploymentOutcome.SUCCEEDED
        ).first(),
        timeout=120,
    )
    assert rollback.image == good.image
    assert AuditEvent.objects.filter(verb="release.rollback.auto", project=project).exists()
    assert _deployment_image(kube_cluster, onboarded) == good.image
    assert status(bad) == ReleaseStatus.ROLLED_BACK


def test_an_oom_killed_release_fails_at_once_and_stays_without_auto_rollback(
    people, onboarded, kube_cluster, pipeline_workers
):
    pipeline_workers("oom", env={"RELEASE_POD_CHECK_SECONDS": "1"})
    project = onboarded.project
    assert not project.auto_rollback
    good = services.release_submit(actor=people.developer, project=project, branch="main")
    wait_until_ended(good, since=time.monotonic(), timeout=300)
    assert status(good) == ReleaseStatus.DEPLOYED, good.error
    hold_rollouts(onboarded, "test", HOLD_SECONDS)

    bad = services.release_submit(actor=people.developer, project=project, branch="main", description="oom")
    _crash_new_pods(kube_cluster, onboarded, bad, restarts=1, exit_code=137, reason="OOMKilled")
    started = time.monotonic()
    wait_until_ended(bad, since=started, timeout=60)
    bad.refresh_from_db()
    assert bad.status == ReleaseStatus.FAILED
    assert time.monotonic() - started < 30
    assert "OOMKilled, restarted 1 time, last exit 137" in bad.error
    assert "raise the memory limit" in bad.error
    time.sleep(2)  # an automatic rollback would be queued by now
    assert not DeploymentRecord.objects.filter(project=project, kind=DeploymentKind.ROLLBACK).exists()
    assert _deployment_image(kube_cluster, onboarded) == bad.image
