"""A valid WorkloadSpec with the changes a test names."""

from dataclasses import replace
from typing import Any

from clusters.workload.manifests import WorkloadSpec


def make(**changes: Any) -> WorkloadSpec:
    base = WorkloadSpec(
        project="orders",
        environment="prod",
        namespace="shop",
        language="go",
        image="hub.example.com/orders:20250101-42",
        replicas=2,
        hpa_min=2,
        hpa_max=6,
        cpu_request="500m",
        memory_request="512Mi",
    )
    return replace(base, **changes)
