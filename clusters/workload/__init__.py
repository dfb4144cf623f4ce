"""What runs in a project environment, as pure data: the request, the typed spec, its validation, the
rendered Kubernetes objects and the secret environment variables. No database, no I/O.

Callers import the modules (``from clusters.workload import manifests, secret_env``) or the names below.
"""

from clusters.workload import manifests, secret_env
from clusters.workload.manifests import (
    OVERRIDABLE,
    Guardrail,
    Knob,
    Rendered,
    WorkloadSpec,
    render,
    spec_errors,
    spec_from_dict,
    spec_to_dict,
)

__all__ = [
    "OVERRIDABLE",
    "Guardrail",
    "Knob",
    "Rendered",
    "WorkloadSpec",
    "manifests",
    "render",
    "secret_env",
    "spec_errors",
    "spec_from_dict",
    "spec_to_dict",
]
