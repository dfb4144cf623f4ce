"""What the monitoring of an environment reads: its label values and where its pods are scraped."""

from __future__ import annotations

from clusters.models import ProjectEnvironment
from observability.monitoring.promql import Scope


def monitoring_scope(environment: ProjectEnvironment) -> Scope:
    """The label values of one environment's series. The Deployment, Service and HPA carry the project's
    name (clusters.workload.manifests), the namespace is the environment's own."""
    name = environment.project.name
    return Scope(
        project=name,
        env=environment.environment,
        namespace=environment.namespace,
        deployment=name,
        hpa=name,
    )
