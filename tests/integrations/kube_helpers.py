"""Credentials for the local control plane, shaped the way an ops user would paste them."""

import base64
from pathlib import Path

import yaml
from kubernetes import client


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def inline_kubeconfig(path: Path) -> str:
    """The local kubeconfig with any certificate files embedded (kubectl config view --raw --flatten)."""
    doc = yaml.safe_load(Path(path).read_text())
    for entry in doc["clusters"]:
        cluster = entry["cluster"]
        if "certificate-authority" in cluster:
            cluster["certificate-authority-data"] = _b64(cluster.pop("certificate-authority"))
    for entry in doc["users"]:
        user = entry["user"]
        for key in ("client-certificate", "client-key"):
            if key in user:
                user[f"{key}-data"] = _b64(user.pop(key))
    return yaml.safe_dump(doc, sort_keys=False)


def ca_pem(path: Path) -> str:
    cluster = yaml.safe_load(Path(path).read_text())["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        return base64.b64decode(cluster["certificate-authority-data"]).decode()
    return Path(cluster["certificate-authority"]).read_text()


def service_account_token(api_client, namespace: str, name: str = "portal", role: str = "admin") -> str:
    """A ServiceAccount in ``namespace`` bound to ClusterRole ``role`` there, and a token for it."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{name}-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    review = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return review.status.token
