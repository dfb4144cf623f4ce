"""The sandbox's launcher for Debian's Alertmanager: a loopback port, no gossip, the receiver's token
read from a file (never in the configuration Alertmanager shows), and a reload on configure()."""

import requests

from integrations.alertmanager import AlertmanagerClient
from sandbox.alertmanager import AlertmanagerServer, render_config, webhook_token
from tests.fixtures.alertmanager import require_alertmanager


def test_the_rendered_configuration_routes_everything_to_the_portal_receiver(tmp_path):
    config = render_config(portal_url="http://127.0.0.1:8000/", token_file=tmp_path / "t", group_wait="1s")
    assert config["route"]["group_by"] == ["project", "env", "alertname"]
    assert config["route"]["group_wait"] == "1s"
    [hook] = config["receivers"][0]["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:8000/api/alerts/alertmanager"
    assert hook["send_resolved"] is True and hook["max_alerts"] == 0
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": str(tmp_path / "t")}


def test_the_webhook_token_is_generated_once_and_kept(tmp_path):
    first = webhook_token(tmp_path)
    assert len(first) >= 32 and webhook_token(tmp_path) == first
    assert (tmp_path / "alertmanager_webhook_token").stat().st_mode & 0o077 == 0


def test_alertmanager_starts_on_loopback_and_reloads_a_new_configuration(tmp_path):
    require_alertmanager()
    token = "secret-receiver-token-0123456789"
    with AlertmanagerServer(tmp_path, portal_url="http://127.0.0.1:9", token=token) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.ready()
        status = requests.get(f"{server.url}/api/v2/status", timeout=10).json()
        assert status["cluster"]["status"] == "disabled"  # --cluster.listen-address= : no gossip
        assert "http://127.0.0.1:9/api/alerts/alertmanager" in status["config"]["original"]
        assert token not in status["config"]["original"]
        server.configure(portal_url="http://127.0.0.1:10", group_wait="2s")
        original = requests.get(f"{server.url}/api/v2/status", timeout=10).json()["config"]["original"]
        assert "http://127.0.0.1:10/api/alerts/alertmanager" in original and "group_wait: 2s" in original
        assert AlertmanagerClient(server.url).ready()
    assert not server.ready()
