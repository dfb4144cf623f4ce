"""PrometheusClient's reload and its verdict, against a real Prometheus (Debian's 2.42)."""

import pytest

from integrations.errors import ServerError, Unauthorized
from integrations.prometheus import PrometheusClient
from sandbox.prometheus import PrometheusServer
from tests.fixtures.prometheus import require_prometheus


@pytest.fixture
def fresh_server(tmp_path):
    require_prometheus()
    with PrometheusServer(tmp_path / "prometheus") as server:
        yield server


def test_the_verdict_is_live_even_before_prometheus_scraped_itself(fresh_server):
    client = PrometheusClient(fresh_server.url)
    assert client.query("prometheus_config_last_reload_successful") == []  # nothing in the TSDB yet
    client.reload()
    assert client.last_reload_successful() is True


def test_a_config_prometheus_cannot_load_fails_the_reload_and_the_verdict(fresh_server):
    client = PrometheusClient(fresh_server.url)
    good = fresh_server.config_file.read_text()
    fresh_server.config_file.write_text("scrape_configs:\n  - job_name: x\n    bogus: 1\n")
    with pytest.raises(ServerError) as failed:
        client.reload()
    assert "failed to reload config" in failed.value.cause
    assert client.last_reload_successful() is False  # it kept running the previous configuration
    fresh_server.config_file.write_text(good)
    client.reload()
    assert client.last_reload_successful() is True


def test_without_the_lifecycle_flag_the_reload_is_refused(tmp_path):
    require_prometheus()
    with PrometheusServer(tmp_path / "prometheus", lifecycle=False) as server:
        with pytest.raises(Unauthorized) as refused:
            PrometheusClient(server.url).reload()
    assert "Lifecycle API is not enabled" in refused.value.cause
