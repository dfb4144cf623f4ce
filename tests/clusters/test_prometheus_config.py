"""The portal-managed Prometheus configuration, applied to a real Prometheus (Debian's 2.42)."""

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.urls import reverse

from clusters.choices import PrometheusConfigStatus
from clusters.models import Cluster, PrometheusConfigState
from clusters.services import clusters as cluster_services
from clusters.services.monitoring_config import prometheus_config_apply
from observability.models import AuditEvent
from sandbox.prometheus import PrometheusServer
from tests.fixtures.prometheus import apply_prometheus_config, require_prometheus, use_prometheus

pytestmark = pytest.mark.django_db


def make_cluster(people, name: str):
    return cluster_services.cluster_create(
        actor=people.ops,
        name=name,
        environment="test",
        api_url="https://10.1.2.3:6443",
        auth_type="token",
        credential="a-token",
    )


def cluster_named(name: str) -> Cluster:
    return Cluster.objects.get(name=name)


def loaded_jobs(server: PrometheusServer) -> list[str]:
    with urllib.request.urlopen(f"{server.url}/api/v1/status/config", timeout=5) as resp:  # noqa: S310
        config = yaml.safe_load(json.load(resp)["data"]["yaml"])
    return [job["job_name"] for job in config["scrape_configs"]]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_loads_one_sd_job_per_cluster_and_the_portal_job(people, settings, prometheus_server):
    make_cluster(people, "east")
    make_cluster(people, "west")
    state = apply_prometheus_config(settings, prometheus_server, reason="test apply")
    assert state.status == PrometheusConfigStatus.APPLIED, state.error
    assert state.applied_at and state.error == "" and state.reason == "test apply"
    assert state.config_sha256 == sha(prometheus_server.config_file)
    # Prometheus itself runs the new jobs, after the sandbox's own base job.
    assert loaded_jobs(prometheus_server) == [
        "prometheus",
        "opsportal-sd-east",
        "opsportal-sd-west",
        "opsportal",
    ]
    event = AuditEvent.objects.get(verb="prometheus_config.apply")
    assert event.changes["status"] == "applied" and event.actor_name == "system"
    assert "test-monitoring-token" not in prometheus_server.config_file.read_text()  # only its file's path


def test_an_unchanged_configuration_is_not_written_again(people, settings, prometheus_server):
    make_cluster(people, "east")
    first = apply_prometheus_config(settings, prometheus_server)
    written = prometheus_server.config_file.stat().st_mtime_ns
    again = prometheus_config_apply(reason="again")
    assert again.status == PrometheusConfigStatus.APPLIED
    assert again.applied_at == first.applied_at and again.reason == first.reason
    assert prometheus_server.config_file.stat().st_mtime_ns == written
    assert AuditEvent.objects.filter(verb="prometheus_config.apply").count() == 1
    # A renamed cluster changes the file: it is written and reloaded.
    cluster_services.cluster_update(actor=people.ops, cluster=cluster_named("east"), name="north")
    renamed = prometheus_config_apply(reason="renamed")
    assert renamed.status == PrometheusConfigStatus.APPLIED and renamed.config_sha256 != first.config_sha256
    assert "opsportal-sd-north" in loaded_jobs(prometheus_server)
    assert "opsportal-sd-east" not in loaded_jobs(prometheus_server)


def test_a_base_promtool_rejects_keeps_the_old_file_and_running_config(
    people, settings, prometheus_server, tmp_path, client
):
    make_cluster(people, "east")
    good = apply_prometheus_config(settings, prometheus_server)
    assert good.status == PrometheusConfigStatus.APPLIED, good.error
    before = sha(prometheus_server.config_file)
    bad = tmp_path / "base.yml"
    bad.write_text(yaml.safe_dump({"scrape_configs": [{"job_name": "node", "bogus": 1}]}))
    make_cluster(people, "west")  # a change that would otherwise be applied
    state = apply_prometheus_config(settings, prometheus_server, base=bad, reason="cluster west created")
    assert state.status == PrometheusConfigStatus.CHECK_FAILED
    assert "field bogus not found" in state.error
    # promtool's output names the target file, not the temporary one it checked.
    assert "prometheus.yml" in state.error and ".tmp" not in state.error
    assert sha(prometheus_server.config_file) == before and state.config_sha256 == before
    assert state.applied_at == good.applied_at  # the last success is kept
    assert not list(prometheus_server.root.glob(".*.tmp"))
    assert "opsportal-sd-east" in loaded_jobs(prometheus_server)
    assert "opsportal-sd-west" not in loaded_jobs(prometheus_server)
    event = AuditEvent.objects.filter(verb="prometheus_config.apply").latest("id")
    assert event.changes["status"] == "check_failed"

    client.force_login(people.ops)
    html = client.get(reverse("cluster-list")).content.decode()
    assert 'data-status="check_failed"' in html and "field bogus not found" in html
    assert "PROMETHEUS_CONFIG_BASE" in html  # the next step


def test_a_refused_reload_is_recorded_and_shown_to_ops(
    people, settings, tmp_path, client, published, django_capture_on_commit_callbacks
):
    require_prometheus()
    # Started without --web.enable-lifecycle, Prometheus answers POST /-/reload with 403.
    with PrometheusServer(tmp_path / "prometheus", lifecycle=False) as server:
        make_cluster(people, "east")
        state = apply_prometheus_config(settings, server)
        assert state.status == PrometheusConfigStatus.RELOAD_FAILED
        assert "Lifecycle API is not enabled" in state.error
        assert state.applied_at is None
        assert "opsportal-sd-east" in server.config_file.read_text()  # written, but not running
        assert "opsportal-sd-east" not in loaded_jobs(server)
        # Failed applies are never skipped as unchanged: the next one tries the reload again.
        retried = prometheus_config_apply(reason="retry")
        assert retried.status == PrometheusConfigStatus.RELOAD_FAILED and retried.reason == "retry"

    client.force_login(people.ops)
    html = client.get(reverse("cluster-list")).content.decode()
    assert 'id="prometheus-config"' in html and 'data-status="reload_failed"' in html
    assert "Lifecycle API is not enabled" in html and "--web.enable-lifecycle" in html
    assert 'id="prometheus-config-apply"' in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("cluster-prometheus-config-apply"))
    assert response.status_code == 302 and response["Location"] == reverse("cluster-list")
    reason = f"applied again by {people.ops.username}"
    assert published == [("clusters.tasks.apply_prometheus_config", {"reason": reason})]
    assert AuditEvent.objects.filter(verb="prometheus_config.apply.request", actor=people.ops).count() == 1


def test_creating_a_cluster_queues_the_apply_on_commit(people, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make_cluster(people, "east")
        assert published == []  # not before the commit
    assert published == [("clusters.tasks.apply_prometheus_config", {"reason": "cluster east created"})]
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        cluster_services.cluster_update(actor=people.ops, cluster=cluster_named("east"), verify_tls=False)
    assert published == []  # only a new name changes the job
    with django_capture_on_commit_callbacks(execute=True):
        cluster_services.cluster_update(actor=people.ops, cluster=cluster_named("east"), name="north")
    assert published == [
        ("clusters.tasks.apply_prometheus_config", {"reason": "cluster east renamed to north"})
    ]


@pytest.mark.parametrize("role", ["outsider", "developer", "owner", "viewer"])
def test_only_ops_know_the_prometheus_configuration_urls(people, client, role, published):
    client.force_login(getattr(people, role))
    assert client.post(reverse("cluster-prometheus-config-apply")).status_code == 404
    assert client.get(reverse("cluster-prometheus-config-apply")).status_code == 404
    assert client.get(reverse("api-prometheus-config")).status_code == 404
    assert client.post(reverse("api-prometheus-config-apply")).status_code == 404
    assert published == [] and not AuditEvent.objects.filter(verb__startswith="prometheus_config").exists()


def test_api_shows_the_state_and_queues_an_apply(
    people, client, settings, prometheus_server, published, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    settings.PROMETHEUS_CONFIG_FILE = ""
    off = client.get(reverse("api-prometheus-config"))
    assert off.status_code == 200 and off.json()["managed"] is False and off.json()["status"] == "never"
    refused = client.post(reverse("api-prometheus-config-apply"))
    assert refused.status_code == 409 and "PROMETHEUS_CONFIG_FILE" in refused.json()["detail"]
    assert "cluster-prometheus-config-apply" not in client.get(reverse("cluster-list")).content.decode()

    state = apply_prometheus_config(settings, prometheus_server)
    body = client.get(reverse("api-prometheus-config")).json()
    assert body["managed"] is True and body["status"] == "applied"
    assert body["config_sha256"] == state.config_sha256 and body["next_step"] == ""
    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post(reverse("api-prometheus-config-apply"))
    assert queued.status_code == 202 and queued.json()["status"] == "applied"
    reason = f"applied again by {people.ops.username}"
    assert published == [("clusters.tasks.apply_prometheus_config", {"reason": reason})]


def test_the_management_command_prints_and_applies(people, settings, prometheus_server, capsys):
    make_cluster(people, "east")
    use_prometheus(settings, prometheus_server)
    call_command("prometheus_config", "--print")
    printed = yaml.safe_load(capsys.readouterr().out)
    assert [job["job_name"] for job in printed["scrape_configs"]][-2:] == ["opsportal-sd-east", "opsportal"]
    call_command("prometheus_config", "--apply", "--reason", "make run")
    assert "applied" in capsys.readouterr().out
    assert PrometheusConfigState.objects.get().reason == "make run"
    settings.PROMETHEUS_CONFIG_FILE = ""
    with pytest.raises(CommandError, match="PROMETHEUS_CONFIG_FILE"):
        call_command("prometheus_config", "--apply")


@pytest.mark.parametrize(
    ("base_text", "promtool", "message"),
    [
        (None, None, "cannot be read"),  # no base file at all
        ("a: [", None, "not valid YAML"),
        ("- 1", None, "YAML mapping"),
        ("{}", "no-promtool", "promtool was not found"),
    ],
)
def test_an_unusable_base_or_promtool_is_check_failed_and_nothing_is_written(
    settings, prometheus_server, tmp_path, base_text, promtool, message
):
    base = tmp_path / "base.yml"
    if base_text is not None:
        base.write_text(base_text)
    use_prometheus(settings, prometheus_server, base=base)
    if promtool:
        settings.PROMTOOL = str(tmp_path / promtool)
    before = sha(prometheus_server.config_file)
    state = prometheus_config_apply(reason="test")
    assert state.status == PrometheusConfigStatus.CHECK_FAILED and message in state.error
    assert sha(prometheus_server.config_file) == before
    assert "PROMETHEUS_CONFIG_BASE" in state.next_step


def test_a_target_that_cannot_be_written_is_check_failed(settings, prometheus_server, tmp_path):
    use_prometheus(settings, prometheus_server)
    settings.PROMETHEUS_CONFIG_FILE = str(tmp_path / "no-such-dir" / "prometheus.yml")
    state = prometheus_config_apply(reason="test")
    assert state.status == PrometheusConfigStatus.CHECK_FAILED and "cannot be written" in state.error
