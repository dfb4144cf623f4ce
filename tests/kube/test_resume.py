"""`make run` keeps its control plane's data: a restart resumes what was deployed, and kept data that
no longer starts is replaced by a fresh cluster instead of blocking the sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client

from sandbox.kube.agent.metrics_api import metrics_api_available, register_metrics_api
from sandbox.kube.cluster import LocalCluster, free_port
from tests.fixtures.kube import KubeCluster

# Two control planes of its own: as slow as the rest of the kube suite, and selected with it.
pytestmark = pytest.mark.kube


def _cluster(workdir: Path) -> LocalCluster:
    # Without the agent's metrics server, so that a kept registration of the previous run stays unowned.
    return LocalCluster(workdir=workdir, keep_data=True, per_pod_exec=False, serve_metrics=False).start(
        timeout=180
    )


def _configmap(cluster: LocalCluster) -> client.V1ConfigMap | None:
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        maps = core.list_namespaced_config_map("default", field_selector="metadata.name=kept")
        return maps.items[0] if maps.items else None


def _pod_runs(cluster: LocalCluster, name: str) -> None:
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(
            "default",
            {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "example/x:1"}]}},
        )
        deadline = time.monotonic() + 60
        while core.read_namespaced_pod(name, "default").status.phase != "Running":
            assert time.monotonic() < deadline, f"pod {name} never ran on the resumed cluster"
            time.sleep(0.2)


def test_a_kept_cluster_resumes_with_its_objects(kube_cluster: KubeCluster, tmp_path: Path):
    first = _cluster(tmp_path)
    try:
        assert not first.resumed
        with first.api_client() as api:
            client.CoreV1Api(api).create_namespaced_config_map(
                "default", {"metadata": {"name": "kept"}, "data": {"answer": "42"}}
            )
            # Its metrics server dies with this run: the resumed cluster must not keep pointing at it.
            register_metrics_api(api, port=free_port(), ca_bundle=(tmp_path / "pki" / "ca.crt").read_bytes())
    finally:
        first.stop()
    # As kept by a version before the aggregation layer: its certificates must be issued on resume.
    aggregation = ("front-proxy-client", "metrics-server")
    for stem in aggregation:
        (tmp_path / "pki" / f"{stem}.crt").unlink()
        (tmp_path / "pki" / f"{stem}.key").unlink()

    second = _cluster(tmp_path)
    try:
        assert second.resumed
        assert _configmap(second).data == {"answer": "42"}
        _pod_runs(second, "after-restart")
        ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
        for stem in aggregation:
            issued = x509.load_pem_x509_certificate((tmp_path / "pki" / f"{stem}.crt").read_bytes())
            issued.verify_directly_issued_by(ca)  # raises unless the kept CA signed it
            assert issued.subject.rfc4514_string() == f"CN={stem}"
        with second.api_client() as api:
            assert metrics_api_available(api) == (False, "not registered")
    finally:
        second.stop()


def test_kept_data_that_cannot_start_is_replaced(kube_cluster: KubeCluster, tmp_path: Path):
    first = _cluster(tmp_path)
    try:
        with first.api_client() as api:
            client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "kept"}})
    finally:
        first.stop()
    (tmp_path / "etcd" / "member" / "snap" / "db").write_bytes(b"not a bolt database" * 512)

    second = _cluster(tmp_path)
    try:
        assert not second.resumed
        assert _configmap(second) is None
        _pod_runs(second, "fresh")
    finally:
        second.stop()
