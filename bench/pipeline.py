"""The portal's own overhead in onboarding and releasing, against the real local control plane and the
sandbox pipeline: ``python -m sandbox.testenv -- python -m bench pipeline``.

- approval → objects applied: from the approve call until Service, Deployment, HPA and PDB are applied
  (the provisioning step's progress entry "Waiting for the Deployment…"), without waiting for pods;
- build finished → Deployment patched: from the end of the Jenkins build (its timestamp + duration) until
  the deployment record is written, immediately before the image patch (registry lookup, state changes,
  the deploy step's start);
- Kubernetes API requests per release: the portal's own (KubeClient.requests_sent, watches counted
  once), and everything the apiserver served meanwhile (apiserver_request_total: the controllers and
  kwok reacting to the rollout included).
"""

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

RELEASES = int(os.environ.get("BENCH_RELEASES", "5"))
REQUEST = {
    "replicas": 2,
    "hpa_min": 2,
    "hpa_max": 4,
    "cpu_request": "100m",
    "memory_request": "64Mi",
    "health_path": "/healthz",
    "startup_seconds": 5,
}


def apiserver_requests(api_client) -> float:
    response = api_client.call_api("/metrics", "GET", _return_http_data_only=True, _preload_content=False)
    lines = response.data.decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("apiserver_request_total{"))


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings_test")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        return run()
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


def onboard(*, ops, dev, project, cluster) -> tuple[float, float]:
    from deploys import services
    from deploys.tasks import provision_ticket

    ticket = services.ticket_create(
        actor=dev, project=project, environment=cluster.environment, request=REQUEST, submit=True
    )
    approved_at, started = time.time(), time.perf_counter()
    services.ticket_approve(actor=ops, ticket_id=ticket.pk, cluster_id=cluster.pk)
    ticket.refresh_from_db()
    provision_ticket.apply(kwargs={"ticket_id": ticket.pk, "run_token": str(ticket.run_token)})
    available = time.perf_counter() - started
    ticket.refresh_from_db()
    assert ticket.status == "active", ticket.error
    waiting = next(p for p in ticket.progress if p["message"].startswith("Waiting for the Deployment"))
    return datetime.fromisoformat(waiting["at"]).timestamp() - approved_at, available


def release_once(*, dev, project, pipeline, api) -> tuple[float, float, int, float]:
    from deploys import services
    from deploys.models import DeploymentRecord
    from deploys.tasks import release_build, release_build_poll, release_deploy, release_tag
    from integrations.kubernetes.client import KubeClient

    before, own_before, started = apiserver_requests(api), KubeClient.requests_sent, time.perf_counter()
    release = services.release_submit(actor=dev, project=project, branch="main")
    ids = {"release_id": release.pk, "run_token": str(release.run_token)}
    for task in (release_tag, release_build, release_deploy):
        task.apply(kwargs=ids)
        release.refresh_from_db()
        # After the build step, the polls a worker would take (with a shorter countdown).
        while task is release_build and release.status == "building":
            time.sleep(0.1)
            release_build_poll.apply(kwargs={**ids, "poll": release.build_polls})
            release.refresh_from_db()
    assert release.status == "deployed", release.error
    build = pipeline.jenkins.jobs[project.name].builds[release.jenkins_build]
    build_finished = (build.timestamp_ms + build.duration_ms) / 1000
    patched = DeploymentRecord.objects.get(release=release).created_at.timestamp()
    return (
        patched - build_finished,
        time.perf_counter() - started,
        KubeClient.requests_sent - own_before,
        apiserver_requests(api) - before,
    )


def run() -> int:
    from django.conf import settings
    from django.contrib.auth.models import Group, User

    from clusters.models import Cluster
    from projects import services as project_services
    from sandbox.kube.cluster import LocalCluster
    from sandbox.pipeline import SandboxPipeline

    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    cluster = LocalCluster(workdir=work / "kube", build_missing=True)
    cluster.start()
    pipeline = SandboxPipeline(work / "pipeline").start()
    try:
        for key, value in pipeline.settings().items():
            setattr(settings, key, json.loads(value) if key == "OPSPORTAL_BASE_IMAGES" else value)
        ops = User.objects.create_user("bench-ops")
        ops.groups.add(Group.objects.get_or_create(name="ops")[0])
        dev = User.objects.create_user("bench-dev")
        project = project_services.project_create(
            actor=ops, name="bench", owner=dev, language="go", gitlab_repository="demo/bench"
        )
        pipeline.add_repository("demo/bench")
        onboarding = [
            onboard(
                ops=ops,
                dev=dev,
                project=project,
                cluster=Cluster.objects.create(
                    name=f"bench-{env}",
                    environment=env,
                    api_url=cluster.server,
                    auth_type="kubeconfig",
                    credential=cluster.kubeconfig.read_text(),
                ),
            )
            for env in ("test", "prod")
        ]
        api = cluster.api_client()
        releases = []
        for _ in range(RELEASES):
            releases.append(release_once(dev=dev, project=project, pipeline=pipeline, api=api))
            time.sleep(1.1)  # a version is a timestamp to the second
        results = {
            "approval → objects applied (s)": statistics.median(o[0] for o in onboarding),
            "approval → Deployment available (s)": statistics.median(o[1] for o in onboarding),
            "build finished → Deployment patched (s)": statistics.median(r[0] for r in releases),
            "whole release incl. the Jenkins build (s)": statistics.median(r[1] for r in releases),
            "Kubernetes API requests per release, the portal's own": statistics.median(
                r[2] for r in releases
            ),
            "Kubernetes API requests per release, all clients": statistics.median(r[3] for r in releases),
        }
        table = "\n".join(
            [
                "| measure (median) | value |",
                "|---|---|",
                *(f"| {name} | {value:.2f} |" for name, value in results.items()),
            ]
        )
        print(table)
        header = (
            f"# Pipeline overhead\n\nMeasured {time.strftime('%Y-%m-%d')} "
            f"on this {os.cpu_count()}-core machine: 2 onboardings and {RELEASES} releases "
            "of the Go demo service (python -m bench pipeline)."
        )
        Path(settings.BASE_DIR, "docs", "bench-pipeline.md").write_text(f"{header}\n\n{table}\n")
        return 0
    finally:
        pipeline.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
