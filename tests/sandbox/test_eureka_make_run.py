"""`make run`'s Eureka: started in the background, set as the sandbox clusters' Eureka URL, relayed to the
pods' gateway once the control plane is registered, its port kept for the next run."""

from __future__ import annotations

import time

import pytest
import requests

from clusters.models import Cluster
from sandbox import services
from sandbox.eureka import jar_ready
from tests.fixtures.ci import unavailable

pytestmark = pytest.mark.django_db(transaction=True)


def _sandbox_cluster(name: str, environment: str) -> Cluster:
    return Cluster.objects.create(
        name=name, environment=environment, api_url="https://127.0.0.1:9", auth_type="token", credential="t"
    )


def test_make_runs_eureka_serves_the_clusters_and_the_pods(tmp_path, capsys) -> None:
    if not jar_ready():
        unavailable("the Eureka server is not built (make eureka-server)")
    for environment, name in services.SANDBOX_CLUSTERS.items():
        _sandbox_cluster(name, environment)
    other = _sandbox_cluster("real-prod", "prod")
    eureka = services.SandboxEureka(tmp_path / "eureka")
    # The control plane may be registered before the server is up: the gateway waits for it.
    eureka.cluster_ready("127.0.0.2")
    thread = eureka.start()
    assert thread is not None
    try:
        thread.join(200)
        # The waiting thread has ended: a JVM spawned by it would get its parent-death SIGTERM now.
        time.sleep(3)
        assert eureka.server is not None and eureka.server.process.poll() is None
        assert eureka.server.ready(), capsys.readouterr().out
        url = eureka.server.eureka_url
        assert set(
            Cluster.objects.filter(name__in=services.SANDBOX_CLUSTERS.values()).values_list(
                "eureka_url", flat=True
            )
        ) == {url}
        assert Cluster.objects.get(pk=other.pk).eureka_url == ""  # only the sandbox's own clusters
        assert eureka.pod_url == f"http://127.0.0.2:{eureka.server.port}/eureka/"
        assert requests.get(f"{eureka.pod_url}apps", timeout=10).status_code == 200  # through the relay
        printed = capsys.readouterr().out
        assert (
            f"Sandbox: Eureka {url}" in printed
            and f"Eureka for pods (EUREKA_URL): {eureka.pod_url}" in printed
        )
        assert (tmp_path / "eureka" / "port").read_text() == str(eureka.server.port)  # the next run's port
    finally:
        eureka.stop()
    assert eureka.server.process is None


def test_without_the_jar_make_run_goes_on_without_eureka(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "empty-cache"))  # a machine that never built it
    eureka = services.SandboxEureka(tmp_path / "eureka")
    assert eureka.start() is None
    assert "make eureka-server" in capsys.readouterr().out
    eureka.cluster_ready("10.0.1.1")  # nothing to relay, nothing fails
    eureka.stop()
    assert eureka.pod_url == ""
