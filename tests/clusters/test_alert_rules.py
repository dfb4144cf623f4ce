"""Alert rules per environment, loaded into a real Prometheus (Debian's 2.42): one rule file per
environment checked by promtool, the six rules with the configured thresholds, a refused change that
changes nothing, and a rule that really fires against a target served here."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from clusters.models import AlertRuleSetting, Cluster, ProjectEnvironment
from clusters.selectors.alert_rules import alert_rules_summary
from clusters.services.alert_rules import (
    alert_rule_update,
    alert_rules_apply,
    alert_rules_check,
    alert_rules_remove,
    rule_file_name,
)
from clusters.services.environments import environment_record_provisioned
from clusters.services.monitoring_config import ConfigRejected, prometheus_config_apply
from observability.models import AuditEvent
from observability.monitoring.alert_rules import ALERTNAMES, RULES, default_setting, render_rules
from observability.monitoring.promql import Scope
from opsportal.celery import app
from sandbox.procs import free_port, stop
from sandbox.prometheus import base_config
from tests.fixtures.ci import unavailable
from tests.fixtures.prometheus import use_prometheus
from tests.fixtures.services import start_celery_worker
from tests.polling import until

pytestmark = pytest.mark.django_db


def prometheus_api(server, path: str) -> dict:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as resp:  # noqa: S310 - loopback http
        return json.load(resp)["data"]


def loaded_groups(server) -> dict[str, dict]:
    return {g["name"]: g for g in prometheus_api(server, "/api/v1/rules")["groups"]}


@pytest.fixture
def prometheus(settings, prometheus_server, tmp_path):
    """The session's Prometheus with the portal's configuration (rule files from this test's directory)."""
    use_prometheus(settings, prometheus_server)
    settings.PROMETHEUS_RULES_DIR = str(tmp_path / "rules")
    settings.ALERTMANAGER_URL = ""
    state = prometheus_config_apply(reason="alert rules test")
    assert state.status == "applied", state.error
    return prometheus_server


@pytest.fixture
def environment(recorded_environment):
    return recorded_environment


def rule_file(settings, environment) -> Path:
    return Path(settings.PROMETHEUS_RULES_DIR) / rule_file_name(
        project=environment.project.name, environment=environment.environment
    )


# --- rendering and promtool -------------------------------------------------------------------------


def test_the_rendered_file_passes_promtool_and_escapes_label_values(settings, prometheus_server):
    use_prometheus(settings, prometheus_server)
    scope = Scope(project='x"} or up{"', env="test", namespace="ns\\", deployment="x", hpa="x")
    text = render_rules(scope, [default_setting(name) for name in ALERTNAMES])
    alert_rules_check(text)  # promtool accepts it
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == list(ALERTNAMES)
    assert all('project="x\\"} or up{\\""' in r["expr"] for r in rules if "up{" in r["expr"])
    assert {r["labels"]["severity"] for r in rules} == {"critical", "warning"}
    for rule in rules:
        assert set(rule["labels"]) == {"severity", "project", "env", "service"}
        assert rule["labels"]["project"] == 'x"} or up{"' and rule["labels"]["env"] == "test"
        assert set(rule["annotations"]) == {"summary", "value", "threshold"}
        assert rule["annotations"]["value"] == "{{ $value }}"


def test_the_rate_window_is_the_one_configured():
    scope = Scope(project="orders", env="test", namespace="orders-test", deployment="orders", hpa="orders")
    settings = [default_setting(name) for name in ALERTNAMES]
    by_name = {
        r["alert"]: r["expr"]
        for r in yaml.safe_load(render_rules(scope, settings, "30s"))["groups"][0]["rules"]
    }
    assert "[30s]" in by_name["ErrorRatioHigh"] and "[5m]" not in by_name["ErrorRatioHigh"]
    assert "[30s]" in by_name["LatencyP95High"]
    assert "[5m]" in yaml.safe_load(render_rules(scope, settings))["groups"][0]["rules"][0]["expr"]


def test_promtool_refuses_a_broken_group_with_its_message(settings, prometheus_server):
    use_prometheus(settings, prometheus_server)
    broken = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum((up)\n"
    with pytest.raises(ConfigRejected) as refused:
        alert_rules_check(broken)
    assert "promtool check rules failed" in str(refused.value)
    assert "the rule file" in str(refused.value)  # the temporary path is not shown


def test_the_prometheus_config_loads_the_rules_dir_and_points_at_alertmanager(
    settings, prometheus_server, tmp_path
):
    use_prometheus(settings, prometheus_server)
    settings.PROMETHEUS_RULES_DIR = str(tmp_path / "rules")
    settings.ALERTMANAGER_URL = "http://127.0.0.1:9093/am"
    state = prometheus_config_apply(reason="alerting block")
    assert state.status == "applied", state.error
    loaded = yaml.safe_load(prometheus_api(prometheus_server, "/api/v1/status/config")["yaml"])
    assert loaded["rule_files"] == [f"{tmp_path / 'rules'}/*.yml"]
    (manager,) = loaded["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]
    assert manager["scheme"] == "http" and manager["path_prefix"] == "/am"
    settings.ALERTMANAGER_URL = ""
    state = prometheus_config_apply(reason="no alertmanager")
    loaded = yaml.safe_load(prometheus_api(prometheus_server, "/api/v1/status/config")["yaml"])
    assert not (loaded.get("alerting") or {}).get("alertmanagers")


def test_the_rules_dir_defaults_beside_the_config_file(settings, prometheus_server):
    use_prometheus(settings, prometheus_server)
    settings.PROMETHEUS_RULES_DIR = ""
    from clusters.services.monitoring_config import rules_dir

    assert rules_dir() == str(Path(settings.PROMETHEUS_CONFIG_FILE).resolve().parent / "rules")
    settings.PROMETHEUS_CONFIG_FILE = ""
    assert rules_dir() == ""


# --- applying ---------------------------------------------------------------------------------------


def test_apply_loads_the_six_rules_with_the_configured_thresholds(settings, prometheus, people, environment):
    alert_rule_update(environment=environment, rule="ErrorRatioHigh", actor=people.owner, threshold=0.1)
    alert_rule_update(
        environment=environment, rule="LatencyP95High", actor=people.ops, for_seconds=120, severity="critical"
    )
    assert alert_rules_apply(environment_id=environment.pk, reason="test") == ""
    group = until(
        "Prometheus loads the group", lambda: loaded_groups(prometheus).get("opsportal:orders:test")
    )
    rules = {r["name"]: r for r in group["rules"]}
    assert list(rules) == list(ALERTNAMES)
    assert rules["ErrorRatioHigh"]["annotations"]["threshold"] == "0.1"
    assert "> 0.1" in rules["ErrorRatioHigh"]["query"]
    assert rules["ErrorRatioHigh"]["labels"] == {
        "severity": "critical",
        "project": "orders",
        "env": "test",
        "service": "orders",
    }
    assert rules["LatencyP95High"]["duration"] == 120
    assert rules["LatencyP95High"]["labels"]["severity"] == "critical"
    for spec in RULES:
        if spec.alertname not in ("ErrorRatioHigh", "LatencyP95High"):
            assert rules[spec.alertname]["duration"] == spec.for_seconds
            assert rules[spec.alertname]["labels"]["severity"] == spec.severity
    event = AuditEvent.objects.filter(verb="alert_rules.apply").latest("id")
    assert event.changes["error"] == "" and event.changes["file"] == "orders.test.yml"
    summary = alert_rules_summary(environment, enabled=True)
    assert summary["status"] == "applied" and summary["error"] == "" and summary["applied_at"]

    # A disabled rule leaves the file; the environment's teardown removes the whole file.
    alert_rule_update(environment=environment, rule="PodRestarting", actor=people.owner, enabled=False)
    alert_rules_apply(environment_id=environment.pk)
    until(
        "the disabled rule is gone",
        lambda: "PodRestarting"
        not in {
            r["name"] for r in loaded_groups(prometheus).get("opsportal:orders:test", {"rules": []})["rules"]
        },
    )
    assert alert_rules_remove(file_name="orders.test.yml") == ""
    assert not rule_file(settings, environment).exists()
    until("the group is gone", lambda: "opsportal:orders:test" not in loaded_groups(prometheus))


def test_a_threshold_out_of_range_is_refused_and_nothing_changes(settings, prometheus, people, environment):
    alert_rules_apply(environment_id=environment.pk)
    before = rule_file(settings, environment).read_text()
    for fields, field in (
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"for_seconds": -1}, "for_seconds"),
        ({"severity": "page"}, "severity"),
    ):
        with pytest.raises(ValidationError) as refused:
            alert_rule_update(environment=environment, rule="ErrorRatioHigh", actor=people.owner, **fields)
        assert field in refused.value.message_dict, refused.value
    assert "between 0 and 1" in str(
        pytest.raises(
            ValidationError,
            alert_rule_update,
            environment=environment,
            rule="ErrorRatioHigh",
            actor=people.owner,
            threshold=2,
        ).value
    )
    with pytest.raises(ValidationError) as unknown:
        alert_rule_update(environment=environment, rule="Nope", actor=people.owner, threshold=1)
    assert "ErrorRatioHigh" in str(unknown.value)
    assert not AlertRuleSetting.objects.exists()
    assert not AuditEvent.objects.filter(verb="alert_rule.update").exists()
    assert rule_file(settings, environment).read_text() == before


def test_a_group_promtool_refuses_is_not_saved(settings, prometheus, people, environment, tmp_path):
    """promtool is the last check: a promtool that refuses everything stands for one that refuses this
    group (a real one only refuses what the range checks let through by mistake)."""
    refusing = tmp_path / "promtool"
    refusing.write_text(
        "#!/bin/sh\necho 'rules.yml: 1:1: parse error: unexpected end of input' >&2\nexit 1\n"
    )
    refusing.chmod(0o755)
    settings.PROMTOOL = str(refusing)
    with pytest.raises(ValidationError) as refused:
        alert_rule_update(environment=environment, rule="ErrorRatioHigh", actor=people.owner, threshold=0.2)
    assert "Prometheus would refuse this rule" in str(refused.value)
    assert "parse error" in str(refused.value)
    assert not AlertRuleSetting.objects.exists()


def test_a_file_refused_at_write_time_keeps_the_previous_one_and_says_why(
    settings, prometheus, people, environment, tmp_path
):
    assert alert_rules_apply(environment_id=environment.pk) == ""
    before = rule_file(settings, environment).read_text()
    alert_rule_update(environment=environment, rule="TargetDown", actor=people.owner, threshold=0.5)
    refusing = tmp_path / "promtool"
    refusing.write_text("#!/bin/sh\necho 'group opsportal:orders:test: refused' >&2\nexit 1\n")
    refusing.chmod(0o755)
    settings.PROMTOOL = str(refusing)
    error = alert_rules_apply(environment_id=environment.pk)
    assert "promtool check rules failed" in error and "refused" in error
    assert rule_file(settings, environment).read_text() == before
    assert not list(rule_file(settings, environment).parent.glob(".*.tmp"))
    summary = alert_rules_summary(environment, enabled=True)
    assert summary["status"] == "failed" and "refused" in summary["error"] and summary["applied_at"]


def test_only_owners_and_ops_change_rules(people, environment):
    for user in (people.developer, people.tester, people.viewer):
        with pytest.raises(PermissionDenied):
            alert_rule_update(environment=environment, rule="TargetDown", actor=user, threshold=0.5)
    with pytest.raises(Http404):
        alert_rule_update(environment=environment, rule="TargetDown", actor=people.outsider, threshold=0.5)
    setting = alert_rule_update(environment=environment, rule="TargetDown", actor=people.owner, threshold=0.5)
    assert setting.threshold == 0.5
    # The same value again changes nothing and is not audited twice.
    alert_rule_update(environment=environment, rule="TargetDown", actor=people.ops, threshold=0.5)
    event = AuditEvent.objects.get(verb="alert_rule.update")
    assert event.actor == people.owner and event.project == people.project
    assert event.changes == {"environment": "test", "rule": "TargetDown", "threshold": [0.0, 0.5]}


# --- queued on activation, change and teardown -------------------------------------------------------


def _activate(people, name: str) -> ProjectEnvironment:
    """What the onboarding run does in its final transaction."""
    cluster = Cluster.objects.create(name=name, environment="test", api_url="https://127.0.0.1:6443")
    with transaction.atomic():
        return environment_record_provisioned(
            project=people.project,
            environment="test",
            cluster=cluster,
            request={},
            overrides={},
            secret_env_stored="",
            live_objects=[],
            at=timezone.now(),
        )


@pytest.mark.django_db(transaction=True)
def test_activation_and_changes_queue_the_rule_file(settings, tmp_path, people, published):
    settings.PROMETHEUS_CONFIG_FILE = str(tmp_path / "prometheus.yml")
    settings.PROMETHEUS_RULES_DIR = ""
    with transaction.atomic():
        env = _activate(people, "rules-q")
        assert published == []  # only once the activation commits
    assert (
        "clusters.tasks.apply_alert_rules",
        {"environment_id": env.pk, "reason": "environment activated"},
    ) in (published)
    published.clear()
    alert_rule_update(environment=env, rule="HPAAtMaximum", actor=people.ops, threshold=0.8)
    assert published == [
        ("clusters.tasks.apply_alert_rules", {"environment_id": env.pk, "reason": "HPAAtMaximum changed"})
    ]


def test_no_rule_files_without_a_managed_prometheus(
    settings, people, environment, published, django_capture_on_commit_callbacks
):
    settings.PROMETHEUS_CONFIG_FILE = ""
    settings.PROMETHEUS_RULES_DIR = ""
    with django_capture_on_commit_callbacks(execute=True):
        setting = alert_rule_update(
            environment=environment, rule="HPAAtMaximum", actor=people.ops, threshold=0.8
        )
    assert setting.threshold == 0.8
    assert AlertRuleSetting.objects.get(rule="HPAAtMaximum").threshold == 0.8
    assert not any(name.endswith("alert_rules") for name, _ in published)


@pytest.mark.django_db(transaction=True)
def test_activation_writes_the_rule_file_through_a_worker(
    settings, prometheus, people, tmp_path, monkeypatch
):
    if not django_settings.REDIS_URL:
        unavailable("needs REDIS_URL (run through sandbox.testenv)")
    queue = f"{django_settings.CELERY_TASK_DEFAULT_QUEUE}-rules-{os.getpid()}"
    monkeypatch.setitem(app.conf, "CELERY_TASK_DEFAULT_QUEUE", queue)
    env = {
        "PROMETHEUS_URL": settings.PROMETHEUS_URL,
        "PROMETHEUS_CONFIG_FILE": settings.PROMETHEUS_CONFIG_FILE,
        "PROMETHEUS_RULES_DIR": settings.PROMETHEUS_RULES_DIR,
        "PROMTOOL": settings.PROMTOOL,
    }
    worker = start_celery_worker(tmp_path / "worker.log", queue=queue, env=env)
    try:
        _activate(people, "rules-w")
        group = until(
            "the activated environment's rules are loaded",
            lambda: loaded_groups(prometheus).get("opsportal:orders:test"),
            timeout=60,
        )
        assert [r["name"] for r in group["rules"]] == list(ALERTNAMES)
    finally:
        stop(worker)


# --- a rule firing against real series ---------------------------------------------------------------


OURS, NEIGHBOUR = "orders-5d9f7-x2x4q", "orders-v2-7c8d9-k3j2p"  # another project's pod, same namespace


class _Exposition(BaseHTTPRequestHandler):
    """/metrics: the service's requests (half fail, all take over 2 s); /kube: kube-state-metrics' series
    for one pod of ours (not ready, restarting) and one of a neighbour project (not ready), and the
    autoscaler at its maximum. Counters grow with time, so rate() and increase() see them move."""

    started = time.monotonic()

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def _app(self, n: int) -> str:
        return (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200"}} {n}\n'
            f'http_requests_total{{code="500"}} {n}\n'
            "# TYPE http_request_duration_seconds histogram\n"
            f'http_request_duration_seconds_bucket{{le="0.5"}} 0\n'
            f'http_request_duration_seconds_bucket{{le="2"}} 0\n'
            f'http_request_duration_seconds_bucket{{le="+Inf"}} {2 * n}\n'
            f"http_request_duration_seconds_sum {6 * n}\n"
            f"http_request_duration_seconds_count {2 * n}\n"
        )

    def _kube(self, n: int) -> str:
        lines = ["# TYPE kube_pod_status_ready gauge"]
        for pod in (OURS, NEIGHBOUR):
            for condition, value in (("true", 0), ("false", 1), ("unknown", 0)):
                where = f'namespace="orders-test",pod="{pod}",condition="{condition}"'
                lines.append(f"kube_pod_status_ready{{{where}}} {value}")
        lines += [
            "# TYPE kube_pod_container_status_restarts_total counter",
            "kube_pod_container_status_restarts_total"
            f'{{namespace="orders-test",pod="{OURS}",container="app"}} {n}',
            "# TYPE kube_horizontalpodautoscaler_spec_max_replicas gauge",
            'kube_horizontalpodautoscaler_spec_max_replicas{namespace="orders-test",'
            'horizontalpodautoscaler="orders"} 5',
            "# TYPE kube_horizontalpodautoscaler_status_current_replicas gauge",
            'kube_horizontalpodautoscaler_status_current_replicas{namespace="orders-test",'
            'horizontalpodautoscaler="orders"} 5',
        ]
        return "\n".join(lines) + "\n"

    def do_GET(self):  # noqa: N802 - the stdlib's name
        n = int((time.monotonic() - self.started) * 10)
        body = (self._kube(n) if self.path == "/kube" else self._app(n)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def failing_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_six_rules_fire_against_real_series_with_the_alert_labels(
    settings, prometheus, people, environment, failing_service, tmp_path
):
    labels = {"project": "orders", "env": "test", "service": "orders", "namespace": "orders-test"}
    base = base_config(self_address=prometheus.address)
    base["scrape_configs"] += [
        {
            "job_name": "orders-pods",
            "static_configs": [
                {"targets": [failing_service], "labels": {**labels, "pod": "orders-1"}},
                # Nothing listens here: the target is down.
                {"targets": [f"127.0.0.1:{free_port()}"], "labels": {**labels, "pod": "orders-2"}},
            ],
        },
        {
            "job_name": "kube-state-metrics",
            "metrics_path": "/kube",
            "honor_labels": True,
            "static_configs": [{"targets": [failing_service]}],
        },
    ]
    base_file = tmp_path / "base.yml"
    base_file.write_text(yaml.safe_dump(base))
    settings.PROMETHEUS_CONFIG_BASE = str(base_file)
    assert prometheus_config_apply(reason="a failing service").status == "applied"
    for name in ALERTNAMES:
        alert_rule_update(environment=environment, rule=name, actor=people.owner, for_seconds=0)
    assert alert_rules_apply(environment_id=environment.pk) == ""

    def firing():
        alerts = prometheus_api(prometheus, "/api/v1/alerts")["alerts"]
        named = {
            a["labels"]["alertname"]: a
            for a in alerts
            if a["state"] == "firing" and a["labels"].get("project") == "orders"
        }
        return named if set(ALERTNAMES) <= set(named) else None

    named = until("the six rules fire", firing, timeout=90)
    error_ratio = named["ErrorRatioHigh"]
    assert error_ratio["labels"] == {
        "alertname": "ErrorRatioHigh",
        "severity": "critical",
        "project": "orders",
        "env": "test",
        "service": "orders",
    }
    assert abs(float(error_ratio["value"]) - 0.5) < 0.1
    assert error_ratio["annotations"]["threshold"] == "0.05"
    assert abs(float(error_ratio["annotations"]["value"]) - 0.5) < 0.1
    assert error_ratio["annotations"]["summary"] == "orders/test: 5xx ratio above 0.05"
    assert float(named["LatencyP95High"]["value"]) == 2  # the highest finite bucket bound
    assert named["LatencyP95High"]["labels"]["severity"] == "warning"
    restarting = named["PodRestarting"]
    assert restarting["labels"]["pod"] == OURS and restarting["labels"]["service"] == "orders"
    assert (
        restarting["annotations"]["summary"] == f"orders/test: pod {OURS} restarted more than 3 times in 15m"
    )
    # The neighbour project's pod in the same namespace is not counted.
    assert float(named["PodsNotReady"]["value"]) == 1
    assert float(named["HPAAtMaximum"]["value"]) == 1
    target_down = named["TargetDown"]
    assert target_down["labels"]["severity"] == "critical" and target_down["labels"]["env"] == "test"
    # One of the service's two targets is down (the kube-state-metrics job carries no project label).
    assert float(target_down["value"]) == 0.5
    for alert in named.values():
        assert {"alertname", "severity", "project", "env", "service"} <= set(alert["labels"])


def test_the_apply_command_writes_every_environments_rules(settings, prometheus, environment):
    """`make run` applies the configuration through this command: a new Prometheus gets the rules too."""
    from django.core.management import call_command

    call_command("prometheus_config", "--apply", "--reason", "make run")
    assert rule_file(settings, environment).exists()
    group = until("the group is loaded", lambda: loaded_groups(prometheus).get("opsportal:orders:test"))
    assert len(group["rules"]) == len(ALERTNAMES)


@pytest.mark.django_db(transaction=True)
def test_teardown_queues_removing_the_rule_file(settings, tmp_path, people, environment, published):
    """No objects to delete, so the unreachable cluster is never called; the file goes with the row."""
    from clusters.selectors.environments import environment_get
    from clusters.services.environments import environment_teardown

    settings.PROMETHEUS_CONFIG_FILE = str(tmp_path / "prometheus.yml")
    settings.PROMETHEUS_RULES_DIR = ""
    ref = environment_get(user=people.ops, name="orders", environment="test")
    assert environment_teardown(actor=people.ops, ref=ref) == []
    assert ("clusters.tasks.remove_alert_rules", {"file_name": "orders.test.yml"}) in published
    assert not ProjectEnvironment.objects.filter(pk=environment.pk).exists()
