"""Ops can turn the start-up probe off and set a short initial delay and probe timeout through the
environment's configuration edit (page and API): the company's first configuration, which the issue's
restart-loop lesson needs. The guardrails warn, only ops may do it, and the change is audited."""

import pytest
from django.urls import reverse
from kubernetes import client as k8s

from clusters.choices import ConfigChangeStatus
from clusters.models import ConfigChange
from observability.models import AuditEvent
from tests.helpers.environments import config_post, provision, put_overrides, run_change

pytestmark = [pytest.mark.django_db, pytest.mark.kube]

FIRST_CONFIGURATION = {
    "knob-startup_probe_enabled": "0",
    "knob-probe_initial_delay_seconds": "5",
    "knob-probe_timeout_seconds": "1",
}


@pytest.fixture
def env(people, local_clusters):
    return provision(people, local_clusters["test"])


def _container(kube_cluster, env) -> k8s.V1Container:
    deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment("orders", env.namespace)
    return deployment.spec.template.spec.containers[0]


def test_ops_override_the_startup_guardrail_back_to_the_first_configuration(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    assert _container(kube_cluster, env).startup_probe is not None  # the portal's default
    client.force_login(people.ops)
    url = reverse("environment-config", args=["orders", "test"])
    form = client.get(url).content.decode()
    assert 'name="knob-startup_probe_enabled"' in form and 'name="knob-probe_initial_delay_seconds"' in form

    preview = client.post(url, {**config_post(env), **FIRST_CONFIGURATION, "step": "preview"})
    assert preview.status_code == 200, preview.content
    plan = preview.context["plan"]
    warnings = {g.code: g.message for g in plan.guardrails if g.level == "warning"}
    assert set(warnings) >= {"startup_probe_enabled", "probe_initial_delay_seconds", "probe_timeout_seconds"}
    assert "restarts in a loop" in warnings["startup_probe_enabled"]
    assert "startup_probe" not in {g.code for g in plan.guardrails}  # no claim of a start-up probe
    assert "-        startupProbe:" in plan.diff and "initialDelaySeconds: 5" in plan.diff
    html = preview.content.decode()
    assert "startup_probe_enabled overridden to 0 (default 1), outside the safe range" in html

    with django_capture_on_commit_callbacks(execute=False):
        applied = client.post(url, {**config_post(env), **FIRST_CONFIGURATION, "step": "apply"})
    assert applied.status_code == 302
    assert run_change(ConfigChange.objects.get()).status == ConfigChangeStatus.APPLIED
    container = _container(kube_cluster, env)
    assert container.startup_probe is None
    assert container.liveness_probe.initial_delay_seconds == 5
    assert container.readiness_probe.initial_delay_seconds == 5
    assert container.liveness_probe.timeout_seconds == 1
    event = AuditEvent.objects.get(verb="environment.config.update")
    assert event.actor == people.ops
    assert event.changes["overrides.startup_probe_enabled"] == [None, 0]
    assert event.changes["overrides.probe_initial_delay_seconds"] == [None, 5]


def test_the_api_shows_the_warnings_refuses_bad_values_and_non_ops(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    client.force_login(people.developer)
    refused = put_overrides(client, env, {"startup_probe_enabled": 0})
    assert refused.status_code == 403
    client.force_login(people.ops)
    dry = put_overrides(
        client, env, {"startup_probe_enabled": 0, "probe_initial_delay_seconds": 5}, dry_run=True
    )
    assert dry.status_code == 200, dry.content
    levels = {g["code"]: g["level"] for g in dry.json()["guardrails"]}
    assert levels["startup_probe_enabled"] == "warning"
    assert levels["probe_initial_delay_seconds"] == "warning"  # 5 s is shorter than the start
    assert levels["probe_timeout_seconds"] == "info"  # not overridden
    for bad in ({"startup_probe_enabled": 2}, {"probe_initial_delay_seconds": -1}):
        answer = put_overrides(client, env, bad)
        assert answer.status_code == 400, (bad, answer.content)
    assert not ConfigChange.objects.exists()
    # A long enough delay without the start-up probe is only informative.
    long_enough = put_overrides(
        client, env, {"startup_probe_enabled": 0, "probe_initial_delay_seconds": 600}, dry_run=True
    )
    assert {g["code"]: g["level"] for g in long_enough.json()["guardrails"]}[
        "probe_initial_delay_seconds"
    ] == "info"

    with django_capture_on_commit_callbacks(execute=False):
        done = put_overrides(client, env, {"startup_probe_enabled": 0})
    assert done.status_code == 202, done.content
    assert run_change(done.json()["id"]).status == ConfigChangeStatus.APPLIED
    assert _container(kube_cluster, env).startup_probe is None
    with django_capture_on_commit_callbacks(execute=False):
        back = put_overrides(client, env, {})
    assert run_change(back.json()["id"]).status == ConfigChangeStatus.APPLIED
    assert _container(kube_cluster, env).startup_probe is not None
