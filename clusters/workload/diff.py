"""A live Kubernetes object beside what it would become, as a unified diff for people to read.

Secret values appear only as fingerprints, and the bookkeeping the apiserver changes on every write is
left out, so the diff shows only real changes.
"""

import difflib

import yaml

from clusters.workload import secret_env

# Fields the apiserver owns; they differ on every read and would drown the real changes.
VOLATILE_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
)


def comparable(obj: dict) -> dict:
    """The object without its status, volatile metadata and secret values."""
    obj = {key: value for key, value in secret_env.redact_secret_object(obj).items() if key != "status"}
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in VOLATILE_METADATA}
    return {**obj, "metadata": metadata}


def dump(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=False)


def object_diff(live: dict, after: dict, *, kind: str, name: str, after_label: str) -> str:
    """The unified diff from ``live`` to ``after`` (a server-side dry run of the desired object)."""
    return "".join(
        difflib.unified_diff(
            dump(comparable(live)).splitlines(keepends=True),
            dump(comparable(after)).splitlines(keepends=True),
            fromfile=f"live {kind}/{name}",
            tofile=f"{after_label} {kind}/{name}",
        )
    )
