"""The rendered Prometheus configuration: the portal's jobs over a base, accepted by the real promtool."""

import subprocess

import pytest
import yaml

from observability.monitoring.prometheus_config import render_prometheus_config
from sandbox.prometheus import base_config, find_promtool
from tests.fixtures.ci import unavailable

PORTAL = "http://127.0.0.1:8000"
TOKEN_FILE = "/var/lib/opsportal/monitoring.token"


def render(base=None, clusters=("sandbox-test", "sandbox-prod"), portal_url=PORTAL, token_file=TOKEN_FILE):
    base = base if base is not None else base_config(self_address="127.0.0.1:9090")
    text = render_prometheus_config(
        base, clusters=list(clusters), portal_url=portal_url, token_file=token_file, scrape_interval=5
    )
    return text, yaml.safe_load(text)


def jobs(config) -> dict:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_one_http_sd_job_per_cluster_and_the_portal_job_with_the_token_file():
    _, config = render()
    found = jobs(config)
    assert list(found) == [
        "prometheus",
        "opsportal-sd-sandbox-prod",
        "opsportal-sd-sandbox-test",
        "opsportal",
    ]
    auth = {"type": "Bearer", "credentials_file": TOKEN_FILE}
    sd = found["opsportal-sd-sandbox-test"]
    assert sd["http_sd_configs"] == [
        {
            "url": "http://127.0.0.1:8000/api/monitoring/sd/sandbox-test/",
            "refresh_interval": "5s",
            "authorization": auth,
        }
    ]
    assert sd["authorization"] == auth  # the pods' /metrics get the token too
    portal = found["opsportal"]
    assert portal["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert portal["metrics_path"] == "/metrics" and portal["scheme"] == "http"
    assert portal["authorization"] == auth
    assert config["global"]["scrape_interval"] == "5s"  # the base's global section is kept


def test_portal_jobs_replace_same_named_base_jobs_and_keep_the_others():
    base = {
        "scrape_configs": [
            {"job_name": "opsportal", "static_configs": [{"targets": ["old:1"]}]},
            {"job_name": "node", "static_configs": [{"targets": ["127.0.0.1:9100"]}]},
        ]
    }
    _, config = render(base, clusters=["c1"])
    found = jobs(config)
    assert [job["job_name"] for job in config["scrape_configs"]] == ["node", "opsportal-sd-c1", "opsportal"]
    assert found["opsportal"]["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert base["scrape_configs"][0]["static_configs"] == [{"targets": ["old:1"]}]  # the input is not changed


def test_a_portal_behind_a_path_prefix_and_https():
    _, config = render({}, clusters=["c1"], portal_url="https://ops.example.com/portal/")
    found = jobs(config)
    assert found["opsportal-sd-c1"]["http_sd_configs"][0]["url"] == (
        "https://ops.example.com/portal/api/monitoring/sd/c1/"
    )
    assert found["opsportal"]["scheme"] == "https"
    assert found["opsportal"]["metrics_path"] == "/portal/metrics"
    assert found["opsportal"]["static_configs"] == [{"targets": ["ops.example.com"]}]


def test_the_same_input_renders_the_same_text_whatever_the_cluster_order():
    assert render(clusters=["b", "a"])[0] == render(clusters=["a", "b", "a"])[0]


def test_without_a_token_file_the_jobs_carry_no_authorization():
    _, config = render({}, clusters=["c1"], token_file="")
    assert all("authorization" not in job for job in config["scrape_configs"])
    assert "authorization" not in config["scrape_configs"][0]["http_sd_configs"][0]


@pytest.mark.parametrize(
    ("base", "portal_url"),
    [([], PORTAL), ({"scrape_configs": {"job_name": "x"}}, PORTAL), ({}, "127.0.0.1:8000"), ({}, "ftp://x/")],
)
def test_unusable_input_is_a_value_error(base, portal_url):
    with pytest.raises(ValueError):
        render(base, portal_url=portal_url)


def test_the_rendered_configuration_passes_the_real_promtool(tmp_path):
    promtool = find_promtool()
    if promtool is None:
        unavailable("promtool missing (apt-get install prometheus)")
    token_file = tmp_path / "monitoring.token"
    base = base_config(self_address="127.0.0.1:9090", exporter="127.0.0.1:10250")
    path = tmp_path / "prometheus.yml"
    path.write_text(render(base, token_file=str(token_file))[0])
    check = [promtool, "check", "config", str(path)]
    # promtool stats a scrape's credentials file: a missing token file is caught before any reload.
    missing = subprocess.run(check, capture_output=True, text=True, check=False)  # noqa: S603
    assert missing.returncode == 1 and str(token_file) in missing.stdout + missing.stderr
    token_file.write_text("token")
    result = subprocess.run(check, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
