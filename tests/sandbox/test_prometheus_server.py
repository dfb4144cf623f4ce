"""The sandbox's Prometheus launcher: Debian's binary on loopback, its base jobs, and its stop."""

import json
import os
import urllib.request
from dataclasses import fields

import pytest
import yaml

from sandbox.kube.cluster import ClusterState
from sandbox.procs import port_open
from sandbox.prometheus import PrometheusServer, base_config, exporter_address, monitoring_token
from tests.fixtures.prometheus import require_prometheus


def jobs(config: dict) -> dict:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_base_jobs_add_the_cluster_exporter_only_when_the_state_names_one(tmp_path):
    ClusterState(phase="ready").write(tmp_path)
    assert exporter_address(tmp_path) is None
    assert exporter_address(None) is None
    assert list(jobs(base_config(self_address="127.0.0.1:9090"))) == ["prometheus"]

    state = json.loads((tmp_path / "state.json").read_text())
    # Written by a pod agent that exports metrics (a newer field than some sandboxes know).
    (tmp_path / "state.json").write_text(json.dumps({**state, "exporter_address": "127.0.0.1:10255"}))
    address = exporter_address(tmp_path)
    if "exporter_address" not in {field.name for field in fields(ClusterState)}:
        # A sandbox whose state has no such field drops the key on reading: no exporter jobs, no error.
        assert address is None
        return
    assert address == "127.0.0.1:10255"
    found = jobs(base_config(self_address="127.0.0.1:9090", exporter=address))
    assert found["kubelet"]["metrics_path"] == "/metrics/cadvisor"
    assert found["kube-state-metrics"]["metrics_path"] == "/metrics/kube-state"
    assert found["kube-state-metrics"]["honor_labels"] is True
    assert found["kubelet"]["static_configs"] == [{"targets": ["127.0.0.1:10255"]}]


@pytest.mark.parametrize("address", ["10.0.1.5:8080", "192.168.1.1:9100", "localhost", "[::1]:9100"])
def test_base_jobs_never_target_anything_but_ipv4_loopback(address):
    with pytest.raises(ValueError):
        base_config(self_address="127.0.0.1:9090", exporter=address)


def test_the_monitoring_token_is_generated_once_and_kept(tmp_path):
    token, path = monitoring_token(tmp_path)
    assert len(token) >= 32 and path.read_text() == token
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert monitoring_token(tmp_path) == (token, path)


def test_server_starts_on_loopback_scrapes_itself_and_stops_its_process(tmp_path):
    require_prometheus()
    server = PrometheusServer(tmp_path / "prometheus")
    server.start()
    try:
        pid = server.process.pid
        assert server.url.startswith("http://127.0.0.1:") and server.ready()
        base = yaml.safe_load(server.base_file.read_text())
        assert base["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
        assert jobs(base)["prometheus"]["static_configs"] == [{"targets": [server.address]}]
        with urllib.request.urlopen(f"{server.url}/api/v1/status/flags", timeout=5) as resp:  # noqa: S310
            flags = json.load(resp)["data"]
        assert flags["web.enable-lifecycle"] == "true"
        assert flags["storage.tsdb.retention.time"] == "2h"
        assert flags["web.listen-address"] == server.address
    finally:
        server.stop()
    assert server.process is None and not port_open(int(server.address.rsplit(":", 1)[1]))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
