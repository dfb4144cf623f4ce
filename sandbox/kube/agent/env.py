"""A container's environment and argv, resolved the way a kubelet does.

Order (later wins): the image's Env, then ``envFrom`` sources in order (with their prefix), then ``env``
entries in order. ``$(VAR)`` in ``env`` values expands from what is defined so far (not from the image);
``$(VAR)`` in command and args expands from the container's resolved env; ``$$`` escapes a dollar;
an undefined reference stays as written.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes.utils.quantity import parse_quantity

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_VALID_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvError(Exception):
    """A reference that cannot be resolved; the kubelet's CreateContainerConfigError."""


def expand(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(replace, text)


@dataclass(frozen=True)
class PodFacts:
    """What the downward API exposes about a pod (``fieldRef``)."""

    name: str
    namespace: str
    uid: str
    node_name: str
    pod_ip: str
    host_ip: str
    service_account: str
    labels: dict[str, str]
    annotations: dict[str, str]

    def field(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": self.service_account,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
        }
        if path in simple:
            return simple[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            source = self.labels if match.group(1) == "labels" else self.annotations
            return source.get(match.group(2), "")
        raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


# (kind, namespace, name) -> {key: value} or None when the object does not exist.
Lookup = Callable[[str, str, str], dict[str, str] | None]


def secret_values(data: dict[str, str] | None) -> dict[str, str]:
    return {key: base64.b64decode(value).decode(errors="replace") for key, value in (data or {}).items()}


def _resource_field(container: dict, ref: dict) -> str:
    resource = ref.get("resource", "")
    section, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(section) or {}).get(name)
    if value is None and section == "requests":
        value = (resources.get("limits") or {}).get(name)
    if value is None:
        return "0"  # the kubelet falls back to node allocatable; 0 tells the process "unknown"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(value) / divisor))


def resolve_env(
    container: dict, pod: PodFacts, namespace: str, lookup: Lookup, image_env: list[str]
) -> dict[str, str]:
    """The container's final environment. Raises EnvError for a missing non-optional reference."""
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix") or ""
        for kind, ref in (("configmap", item.get("configMapRef")), ("secret", item.get("secretRef"))):
            if not ref:
                continue
            values = lookup(kind, namespace, ref["name"])
            if values is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind} "{ref["name"]}" not found')
            for key, value in values.items():
                if _VALID_NAME.match(prefix + key):
                    env[prefix + key] = value
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item or item.get("valueFrom") is None:
            env[name] = expand(item.get("value") or "", env)
            continue
        source = item["valueFrom"]
        if source.get("fieldRef"):
            env[name] = pod.field(source["fieldRef"]["fieldPath"])
        elif source.get("resourceFieldRef"):
            env[name] = _resource_field(container, source["resourceFieldRef"])
        else:
            kind, ref = (
                ("secret", source["secretKeyRef"])
                if source.get("secretKeyRef")
                else ("configmap", source.get("configMapKeyRef") or {})
            )
            values = lookup(kind, namespace, ref.get("name", ""))
            if values is None or ref.get("key") not in values:
                if ref.get("optional"):
                    continue
                what = f'{kind} "{ref.get("name")}"'
                raise EnvError(
                    f"{what} not found" if values is None else f"couldn't find key {ref.get('key')} in {what}"
                )
            env[name] = values[ref["key"]]
    merged = dict(entry.split("=", 1) if "=" in entry else (entry, "") for entry in image_env)
    merged.update(env)
    return merged


def resolve_argv(container: dict, entrypoint: list[str], cmd: list[str], env: dict[str, str]) -> list[str]:
    """Pod command/args over the image's Entrypoint/Cmd, as Kubernetes documents it."""
    command, args = container.get("command"), container.get("args")
    if command:
        argv = [*command, *(args or [])]
    elif args:
        argv = [*entrypoint, *args]
    else:
        return [*entrypoint, *cmd]
    return [expand(part, env) for part in argv]
