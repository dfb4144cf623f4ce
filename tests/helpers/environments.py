"""A project environment running in the local control plane, its configuration form and its changes."""

from django.utils import timezone
from kubernetes import client as k8s

from clusters.models import ConfigChange, ProjectEnvironment
from clusters.selectors.clusters import cluster_log_pipeline
from clusters.selectors.environments import config_version
from clusters.tasks import apply_config_change
from clusters.workload import manifests
from clusters.workload.request import build_spec
from integrations.kubernetes.client import KubeClient
from tests.fixtures.clusters import VALID_REQUEST


def provision(
    people, cluster, *, overrides: dict | None = None, wait: bool = True, **changes
) -> ProjectEnvironment:
    """The project running in the cluster's environment: objects applied, row saved, and (``wait``) the
    Deployment available. ``wait=False`` for a test that watches the start itself."""
    request = {**VALID_REQUEST, **changes}
    spec = build_spec(
        project=people.project,
        environment=cluster.environment,
        cluster=cluster,
        request=request,
        overrides=overrides or {},
        log_pipeline=cluster_log_pipeline(cluster),
    )
    rendered = manifests.render(spec)
    with KubeClient.from_cluster(cluster) as client:
        client.ensure_namespace(spec.namespace)
        for obj in rendered.objects:
            client.apply(obj)
        if wait:
            outcome = client.wait_for_deployment(spec.namespace, spec.project, timeout=90)
            assert outcome.succeeded, outcome
    return ProjectEnvironment.objects.create(
        project=people.project,
        environment=cluster.environment,
        cluster=cluster,
        namespace=spec.namespace,
        spec={"request": request, "overrides": overrides or {}},
        live_objects=[{"kind": o["kind"], "name": o["metadata"]["name"]} for o in rendered.objects],
        provisioned_at=timezone.now(),
    )


def put_overrides(client, env, overrides: dict, *, dry_run: bool = False):
    """The environment's configuration API: new overrides, the request unchanged."""
    return client.put(
        f"/api/projects/{env.project.name}/environments/{env.environment}/config/",
        {"request": {}, "overrides": overrides, "dry_run": dry_run},
        content_type="application/json",
    )


def pod_names(kube_cluster, namespace: str) -> list[str]:
    pods = k8s.CoreV1Api(kube_cluster.api_client).list_namespaced_pod(namespace).items
    return sorted(p.metadata.name for p in pods if not p.metadata.deletion_timestamp)


def config_post(env, **changes) -> dict:
    request = {**VALID_REQUEST, **env.spec["request"]}
    data = {
        "replicas": request["replicas"],
        "hpa_min": request["hpa_min"],
        "hpa_max": request["hpa_max"],
        "hpa_cpu_target": request["hpa_cpu_target"],
        "hpa_memory_target": "",
        "cpu_request": request["cpu_request"],
        "memory_request": request["memory_request"],
        "cpu_limit": "",
        "memory_limit": "",
        "health_path": request["health_path"],
        "startup_seconds": request["startup_seconds"],
        "runtime_options": request["runtime_options"],
        "env_vars": "LOG_LEVEL=info",
        # The version of the configuration as it is now: the form of someone who just loaded the page.
        "version": config_version(ProjectEnvironment.objects.get(pk=env.pk).spec),
    }
    data.update(changes)
    return data


def run_change(change) -> ConfigChange:
    """Run the task for a change as the worker would (the message the commit would have queued)."""
    change = ConfigChange.objects.get(pk=getattr(change, "pk", change))
    apply_config_change.apply(kwargs={"change_id": change.pk, "run_token": str(change.run_token)})
    change.refresh_from_db()
    return change
