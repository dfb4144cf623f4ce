"""The kubelet's env and argv rules, as the pod agent applies them (no cluster needed)."""

from __future__ import annotations

import pytest

from sandbox.kube.agent.env import EnvError, PodFacts, expand, resolve_argv, resolve_env

FACTS = PodFacts(
    name="web-1",
    namespace="shop",
    uid="u-1",
    node_name="kwok-node-0",
    pod_ip="10.0.1.7",
    host_ip="127.0.0.1",
    service_account="default",
    labels={"app": "web"},
    annotations={"team": "blue"},
)
OBJECTS = {
    ("configmap", "shop", "settings"): {"mode": "fast", "bad key": "x"},
    ("secret", "shop", "creds"): {"password": "s3cret"},
}


def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
    return OBJECTS.get((kind, namespace, name))


def test_expand_follows_the_kubelet_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(A) is escaped, $$ is a dollar", env) == "$(A) is escaped, $ is a dollar"
    assert expand("$A and $(A", env) == "$A and $(A"


def test_env_layers_image_env_from_and_env_in_order() -> None:
    container = {
        "envFrom": [
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
        ],
        "env": [
            {"name": "MODE", "value": "slow"},
            {"name": "URL", "value": "http://$(POD_IP):8080/$(CFG_mode)"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL_AFTER", "value": "http://$(POD_IP)"},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        "resources": {"limits": {"memory": "512Mi"}},
    }
    env = resolve_env(container, FACTS, "shop", lookup, ["PATH=/bin", "MODE=image", "LANG"])
    assert env["PATH"] == "/bin" and env["LANG"] == ""
    assert env["MODE"] == "slow"  # the pod's env wins over the image's
    assert env["CFG_mode"] == "fast" and "CFG_bad key" not in env  # invalid names are skipped
    assert env["password"] == "s3cret"
    # A reference expands only from what is defined before it.
    assert env["URL"] == "http://$(POD_IP):8080/fast"
    assert env["URL_AFTER"] == "http://10.0.1.7"
    assert env["APP"] == "web" and env["MEM"] == "512"


def test_missing_references_fail_unless_optional() -> None:
    missing_key = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}]}
    with pytest.raises(EnvError, match='couldn\'t find key nope in secret "creds"'):
        resolve_env(missing_key, FACTS, "shop", lookup, [])
    missing_map = {"envFrom": [{"configMapRef": {"name": "absent"}}]}
    with pytest.raises(EnvError, match='configmap "absent" not found'):
        resolve_env(missing_map, FACTS, "shop", lookup, [])
    optional = {
        "envFrom": [{"configMapRef": {"name": "absent", "optional": True}}],
        "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}}
        ],
    }
    assert resolve_env(optional, FACTS, "shop", lookup, []) == {}


def test_argv_is_pod_command_and_args_over_image_entrypoint_and_cmd() -> None:
    env = {"PORT": "8080"}
    entrypoint, cmd = ["/entry"], ["serve"]
    assert resolve_argv({}, entrypoint, cmd, env) == ["/entry", "serve"]
    assert resolve_argv({"args": ["--port=$(PORT)"]}, entrypoint, cmd, env) == ["/entry", "--port=8080"]
    assert resolve_argv({"command": ["/bin/app"]}, entrypoint, cmd, env) == ["/bin/app"]
    assert resolve_argv({"command": ["/bin/app"], "args": ["$(PORT)"]}, entrypoint, cmd, env) == [
        "/bin/app",
        "8080",
    ]
