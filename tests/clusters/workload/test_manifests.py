"""Unit tests for clusters.workload.manifests: spec validation, rendered objects, guardrails. No database."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from clusters.workload.manifests import (
    OVERRIDABLE,
    Guardrail,
    WorkloadSpec,
    render,
    spec_errors,
    spec_from_dict,
    spec_to_dict,
    stop_budget,
)
from tests.helpers.workload import make

SELECTOR = {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders-prod"}
LABELS = {
    **SELECTOR,
    "app.kubernetes.io/managed-by": "opsportal",
    "opsportal.io/project": "orders",
    "opsportal.io/environment": "prod",
}


def java(**changes: Any) -> WorkloadSpec:
    return make(**{"language": "java", "cpu_request": "1", "memory_request": "2Gi", **changes})


def by_kind(spec: WorkloadSpec) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in render(spec).objects}


def container(spec: WorkloadSpec) -> dict:
    return by_kind(spec)["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def env(spec: WorkloadSpec) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(spec).get("env", [])}


def guardrail(spec: WorkloadSpec, code: str) -> Guardrail:
    found = [g for g in render(spec).guardrails if g.code == code]
    assert len(found) == 1, f"expected one guardrail {code!r}, got {found}"
    return found[0]


def codes(spec: WorkloadSpec) -> set[str]:
    return {g.code for g in render(spec).guardrails}


def prestop_script(spec: WorkloadSpec) -> str:
    command = container(spec)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    return command[2]


# ---------------------------------------------------------------------------------------------------------
# Validation


def test_valid_specs_have_no_errors():
    assert spec_errors(make()) == {}
    assert spec_errors(java(eureka_enabled=True, service_type="LoadBalancer", cpu_limit="2")) == {}


def test_hpa_min_above_max_is_rejected():
    errors = spec_errors(make(hpa_min=5, hpa_max=3, replicas=4))
    assert errors["hpa_min"] == ["hpa_min (5) must not be greater than hpa_max (3)."]


def test_zero_replicas_is_rejected():
    assert spec_errors(make(replicas=0))["replicas"] == ["replicas must be at least 1, not 0."]


def test_replicas_outside_the_autoscaling_range_is_rejected():
    assert "within the autoscaling range 2-6" in spec_errors(make(replicas=7))["replicas"][0]
    assert "within the autoscaling range 2-6" in spec_errors(make(replicas=1))["replicas"][0]


def test_hpa_min_zero_and_max_above_100_are_rejected():
    assert "hpa_min" in spec_errors(make(hpa_min=0, replicas=1))
    assert spec_errors(make(hpa_max=101))["hpa_max"] == ["hpa_max must be at most 100, not 101."]


def test_one_core_is_not_a_quantity():
    errors = spec_errors(make(cpu_request="1 core"))
    assert errors == {
        "cpu_request": ["cpu_request: '1 core' is not a Kubernetes quantity; use e.g. 1, 500m."]
    }


@pytest.mark.parametrize("value", ["1K", " 1", "NaN", "Infinity", "1_000", "1ki", "1 Gi", "2GB", "0x10"])
def test_quantities_the_apiserver_would_reject_are_rejected(value):
    assert "is not a Kubernetes quantity" in spec_errors(make(memory_request=value))["memory_request"][0]


@pytest.mark.parametrize("value", ["1", "500m", "0.5", "1e3", "1Gi", "512Mi", "1.5Gi", "2k", "+1"])
def test_quantities_in_kubernetes_syntax_are_accepted(value):
    # The syntax is accepted; "1Gi" or "1e3" cores are refused only for size (see the maximum tests).
    cpu_errors = spec_errors(make(cpu_request=value, cpu_limit="")).get("cpu_request", [])
    assert not any("not a Kubernetes quantity" in message for message in cpu_errors)
    assert "memory_request" not in spec_errors(make(memory_request=value, memory_limit=""))


@pytest.mark.parametrize("value", ["\u0661", "\u0661Gi", "1\u0660\u0660m", "\uff11Gi", "1e\u0663"])
def test_quantities_with_non_ascii_digits_are_rejected(value):
    errors = spec_errors(make(cpu_request=value, memory_request=value))
    assert "is not a Kubernetes quantity" in errors["cpu_request"][0]
    assert "is not a Kubernetes quantity" in errors["memory_request"][0]


def test_cpu_above_64_cores_is_rejected():
    assert "cpu_request" not in spec_errors(make(cpu_request="64", cpu_limit="64000m"))
    errors = spec_errors(make(cpu_request="65", cpu_limit="1e3"))
    assert errors["cpu_request"] == ["cpu_request must be at most 64 cores, not '65'."]
    assert errors["cpu_limit"] == ["cpu_limit must be at most 64 cores, not '1e3'."]


def test_memory_above_256gi_is_rejected():
    assert "memory_request" not in spec_errors(make(memory_request="256Gi", memory_limit="256Gi"))
    errors = spec_errors(make(memory_request="257Gi", memory_limit="1Ei"))
    assert errors["memory_request"] == ["memory_request must be at most 256Gi, not '257Gi'."]
    assert errors["memory_limit"] == ["memory_limit must be at most 256Gi, not '1Ei'."]


@pytest.mark.parametrize("value", ["0", "0m", "-1", "-500Mi"])
def test_quantities_must_be_positive(value):
    errors = spec_errors(make(memory_request=value))
    assert errors["memory_request"] == ["memory_request must be greater than zero."]


def test_quantities_are_required():
    assert "cpu_request is required" in spec_errors(make(cpu_request=""))["cpu_request"][0]


def test_limits_below_requests_are_rejected():
    errors = spec_errors(make(cpu_request="1", cpu_limit="500m", memory_request="1Gi", memory_limit="512Mi"))
    assert errors["cpu_limit"] == ["cpu_limit (500m) must not be lower than cpu_request (1)."]
    assert errors["memory_limit"] == ["memory_limit (512Mi) must not be lower than memory_request (1Gi)."]
    assert spec_errors(make(cpu_request="1", cpu_limit="1000m")) == {}


@pytest.mark.parametrize("name", ["Orders", "orders_api", "-orders", "orders-", "1orders", "a" * 59, ""])
def test_project_must_be_a_dns_label_starting_with_a_letter(name):
    assert "is not a valid name" in spec_errors(make(project=name))["project"][0]


def test_project_leaves_room_for_the_environment_in_the_instance_label():
    assert spec_errors(make(project="a" * 58)) == {}


@pytest.mark.parametrize("name", ["Shop", "shop_1", "-shop", "a" * 64, "shop.prod"])
def test_namespace_must_be_a_dns_1123_label(name):
    assert "not a valid DNS-1123 label" in spec_errors(make(namespace=name))["namespace"][0]


@pytest.mark.parametrize(
    ("field", "value"), [("container_port", 0), ("container_port", 70000), ("service_port", 0)]
)
def test_ports_must_be_in_range(field, value):
    assert spec_errors(make(**{field: value}))[field] == [f"{field} must be from 1 to 65535, not {value}."]


def test_startup_seconds_must_be_between_zero_and_an_hour():
    assert spec_errors(make(startup_seconds=-1))["startup_seconds"] == [
        "startup_seconds must not be negative."
    ]
    assert "at most 3600" in spec_errors(make(startup_seconds=3601))["startup_seconds"][0]
    assert spec_errors(make(startup_seconds=0)) == {}
    assert spec_errors(make(startup_seconds=3600)) == {}


def test_service_type_must_be_cluster_ip_or_load_balancer():
    assert "ClusterIP, LoadBalancer" in spec_errors(make(service_type="NodePort"))["service_type"][0]


@pytest.mark.parametrize(
    "path", ["healthz", "", "/a b", "/x;reboot", "/$(id)", "/a'b", "/a`b`", "/a&b", "/a\nb"]
)
def test_health_path_must_be_a_plain_path(path):
    assert "must start with '/'" in spec_errors(make(health_path=path))["health_path"][0]


def test_metrics_path_and_port_are_checked_and_reach_the_pod_annotations():
    assert "must start with '/'" in spec_errors(make(metrics_path="/m etrics"))["metrics_path"][0]
    assert "from 1 to 65535" in spec_errors(make(metrics_port=70000))["metrics_port"][0]
    template = render(make(metrics_path="/actuator/prometheus", metrics_port=9090)).objects
    pod = next(o for o in template if o["kind"] == "Deployment")["spec"]["template"]["metadata"]
    assert pod["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/actuator/prometheus",
        "prometheus.io/port": "9090",
    }
    # Without a port of its own, Prometheus scrapes the container port.
    default = next(o for o in render(make()).objects if o["kind"] == "Deployment")
    assert default["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8080"


def test_eureka_deregister_path_follows_the_same_rule():
    assert "eureka_deregister_path" in spec_errors(java(eureka_enabled=True, eureka_deregister_path="/x|sh"))


def test_env_var_names_must_be_valid_and_unique():
    errors = spec_errors(make(env_vars=(("1ABC", "x"), ("GOOD", "1"), ("GOOD", "2"), ("A-B", "x"))))
    assert errors["env_vars"] == [
        "environment variable name '1ABC' must match [A-Za-z_][A-Za-z0-9_]*.",
        "environment variable 'GOOD' is set twice.",
        "environment variable name 'A-B' must match [A-Za-z_][A-Za-z0-9_]*.",
    ]


def test_java_tool_options_is_reserved_for_java_only():
    errors = spec_errors(java(env_vars=(("JAVA_TOOL_OPTIONS", "-Xmx1g"),)))
    assert errors["env_vars"] == [
        "environment variable 'JAVA_TOOL_OPTIONS' is set by the platform; use runtime_options instead."
    ]
    assert spec_errors(make(env_vars=(("JAVA_TOOL_OPTIONS", "x"),))) == {}


@pytest.mark.parametrize(
    ("field", "value"), [("hpa_cpu_target", 0), ("hpa_cpu_target", 101), ("hpa_memory_target", 0)]
)
def test_hpa_targets_are_percentages(field, value):
    assert spec_errors(make(**{field: value}))[field] == [f"{field} must be a percentage from 1 to 100."]


def test_language_and_environment_must_be_known():
    errors = spec_errors(make(language="rust", environment="staging"))
    assert errors["language"] == ["language must be one of java, go, php, python, node, not 'rust'."]
    assert errors["environment"] == ["environment must be one of test, prod, not 'staging'."]


@pytest.mark.parametrize("options", ["-Xmx1g\n-Dx=1", "-Dx=1\r", "-Dx=\0"])
def test_runtime_options_must_be_one_line(options):
    assert "single line" in spec_errors(java(runtime_options=options))["runtime_options"][0]


def test_unknown_overrides_are_rejected():
    message = spec_errors(make(overrides=(("initial_delay_seconds", 60),)))["overrides"][0]
    assert message.startswith("'initial_delay_seconds' is not an overridable setting; known: ")


@pytest.mark.parametrize("value", [0, 61, "5", 2.5, True])
def test_override_values_must_be_whole_numbers_in_range(value):
    errors = spec_errors(make(overrides=(("probe_timeout_seconds", value),)))
    assert errors["overrides"] == ["'probe_timeout_seconds' must be a whole number from 1 to 60."]


def test_java_only_knobs_are_rejected_for_other_languages():
    errors = spec_errors(make(overrides=(("jvm_max_ram_percentage", 70),)))
    assert errors["overrides"] == ["'jvm_max_ram_percentage' applies only to java."]


def test_wrong_types_are_reported_instead_of_crashing():
    errors = spec_errors(make(replicas="3", cpu_request=1))  # type: ignore[arg-type]
    assert errors == {
        "replicas": ["replicas must be a whole number."],
        "cpu_request": ["cpu_request must be text."],
    }


def test_render_refuses_an_invalid_spec():
    with pytest.raises(ValueError, match="hpa_min"):
        render(make(hpa_min=5, hpa_max=3))


# ---------------------------------------------------------------------------------------------------------
# Objects


def test_objects_come_in_apply_order_with_pdb_only_when_two_pods_are_kept():
    assert [o["kind"] for o in render(make(hpa_min=2)).objects] == [
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    assert [o["kind"] for o in render(make(hpa_min=1, replicas=1)).objects] == [
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
    ]
    assert guardrail(make(hpa_min=1, replicas=1), "pdb").level == "info"


def test_pdb_allows_one_pod_down_and_selects_the_pods():
    pdb = by_kind(make(hpa_min=3, replicas=3))["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": SELECTOR}


def test_every_object_is_complete_and_labelled():
    spec = make()
    deployment = by_kind(spec)["Deployment"]
    for obj in render(spec).objects:
        assert obj["apiVersion"] and obj["kind"] and obj["spec"]
        assert obj["metadata"] == {"name": "orders", "namespace": "shop", "labels": LABELS}
    assert deployment["spec"]["template"]["metadata"]["labels"] == LABELS


def test_selectors_use_only_the_stable_labels():
    objects = by_kind(make())
    assert objects["Service"]["spec"]["selector"] == SELECTOR
    assert objects["Deployment"]["spec"]["selector"] == {"matchLabels": SELECTOR}
    template_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= template_labels.items()


@pytest.mark.parametrize("service_type", ["ClusterIP", "LoadBalancer"])
def test_service_type_and_port(service_type):
    service = by_kind(make(service_type=service_type, service_port=8000))["Service"]
    assert service["spec"]["type"] == service_type
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


def test_deployment_rolls_out_without_losing_capacity():
    spec = by_kind(make(replicas=3, hpa_min=2))["Deployment"]["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600


def test_progress_deadline_covers_a_long_start_up():
    spec = by_kind(make(startup_seconds=3600))["Deployment"]["spec"]
    assert spec["progressDeadlineSeconds"] > 3600 * 1.5


def test_container_name_port_and_resources():
    c = container(make(cpu_request="250m", memory_request="256Mi"))
    assert c["name"] == "app"
    assert c["image"] == "hub.example.com/orders:20250101-42"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # No CPU limit unless asked for; the memory limit defaults to the request.
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}
    limited = container(make(cpu_limit="2", memory_limit="1Gi"))["resources"]["limits"]
    assert limited == {"cpu": "2", "memory": "1Gi"}


def test_env_vars_keep_their_order():
    assert container(make(env_vars=(("B", "2"), ("A", "1"))))["env"] == [
        {"name": "B", "value": "2"},
        {"name": "A", "value": "1"},
    ]
    assert "env" not in container(make())


# ---------------------------------------------------------------------------------------------------------
# Guardrails: start-up and probes


def _startup_window(probe: dict) -> int:
    return probe["periodSeconds"] * probe["failureThreshold"]


@pytest.mark.parametrize("startup_seconds", [0, 10, 60])
def test_java_gets_at_least_90_seconds_to_start(startup_seconds):
    probe = container(java(startup_seconds=startup_seconds))["startupProbe"]
    assert _startup_window(probe) >= 90
    assert probe["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTP"}


def test_other_languages_get_at_least_30_seconds_to_start():
    assert _startup_window(container(make(startup_seconds=0))["startupProbe"]) >= 30


@pytest.mark.parametrize("startup_seconds", [100, 333, 3600])
def test_startup_allowance_is_half_again_the_expected_time(startup_seconds):
    window = _startup_window(container(java(startup_seconds=startup_seconds))["startupProbe"])
    assert window >= math.ceil(startup_seconds * 1.5)


def test_no_probe_relies_on_initial_delay():
    c = container(java(startup_seconds=120))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "initialDelaySeconds" not in c[probe]
    assert guardrail(java(), "startup_probe").level == "info"


def test_probes_have_a_patient_timeout_and_three_failures():
    c = container(make(health_path="/actuator/health"))
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["timeoutSeconds"] >= 3
        assert c[probe]["failureThreshold"] == 3
        assert c[probe]["httpGet"] == {"path": "/actuator/health", "port": "http", "scheme": "HTTP"}
    assert c["startupProbe"]["timeoutSeconds"] >= 3


def test_probe_timeout_below_the_safe_minimum_is_an_overridden_warning():
    spec = make(overrides=(("probe_timeout_seconds", 1),))
    assert container(spec)["livenessProbe"]["timeoutSeconds"] == 1
    rail = guardrail(spec, "probe_timeout_seconds")
    assert (rail.level, rail.overridden) == ("warning", True)
    assert "overridden to 1 (default 3)" in rail.message


def test_probe_timeout_raised_is_recorded_but_not_a_warning():
    spec = make(overrides=(("probe_timeout_seconds", 15),))
    c = container(spec)
    assert c["readinessProbe"]["timeoutSeconds"] == 15
    # A probe must not take longer than its period.
    assert c["startupProbe"]["periodSeconds"] >= 15
    assert c["readinessProbe"]["periodSeconds"] >= 15
    assert _startup_window(c["startupProbe"]) >= 30
    rail = guardrail(spec, "probe_timeout_seconds")
    assert (rail.level, rail.overridden) == ("info", True)


# ---------------------------------------------------------------------------------------------------------
# Guardrails: graceful exit


def test_prestop_sets_out_of_service_while_serving_then_waits_the_stale_window():
    spec = java(eureka_enabled=True, container_port=9000)
    script = prestop_script(spec)
    assert "url=http://127.0.0.1:9000/actuator/serviceregistry;" in script
    assert "service-registry" not in script
    assert 'body=\'{"status":"OUT_OF_SERVICE"}\'' in script
    # The static helper first, then wget, then curl, each with the de-registration timeout.
    assert script.index("helper=/opt/opsportal/bin/http-post") < script.index('"$helper" -t 5')
    assert (
        script.index('"$helper" -t 5') < script.index("wget -q -O /dev/null") < script.index("curl -fsS -o")
    )
    assert 'limit="timeout 5"' in script and "-m 5" in script
    # busybox's wget may lack -T (Debian's crashes on it): its limit comes from timeout(1).
    assert " -T " not in script
    # 30 s server cache + 30 s fetch interval + 35 s load-balancer cache + 5 s margin.
    assert script.endswith('sleep 100\nexit "$fail"\n')
    # Nothing hides a failure any more: the hook's status is the de-registration's, given after the wait.
    assert "|| true" not in script


def test_prestop_uses_the_configured_deregister_path_and_caches():
    spec = java(
        eureka_enabled=True,
        eureka_deregister_path="/debug/stop",
        eureka_response_cache_seconds=0,
        registry_refresh_seconds=5,
        loadbalancer_cache_seconds=2,
    )
    script = prestop_script(spec)
    assert "url=http://127.0.0.1:8080/debug/stop;" in script
    assert "sleep 12\n" in script


def test_prestop_without_eureka_still_waits_for_endpoint_removal():
    script = prestop_script(make())
    assert "wget" not in script and "curl" not in script
    assert script == "sleep 5"


def test_the_stale_window_is_the_sum_of_the_callers_caches_and_a_margin():
    budget = stop_budget(
        java(eureka_enabled=True, eureka_response_cache_seconds=10, loadbalancer_cache_seconds=0)
    )
    assert [(part.code, part.seconds) for part in budget.parts] == [
        ("eureka_response_cache", 10),
        ("registry_refresh", 30),
        ("loadbalancer_cache", 0),
        ("margin", 5),
    ]
    assert (budget.stale_window, budget.sleep, budget.hook_timeout, budget.shutdown) == (45, 45, 5, 30)
    assert budget.grace == 5 + 45 + 30
    assert budget.deregister_path == "/actuator/serviceregistry"
    assert not budget.sleep_short
    plain = stop_budget(make())
    assert [(part.code, part.seconds) for part in plain.parts] == [("endpoints", 5)]
    assert (plain.stale_window, plain.hook_timeout, plain.grace, plain.deregister_path) == (5, 0, 35, "")


@pytest.mark.parametrize(
    "spec",
    [
        make(),
        java(eureka_enabled=True),
        java(eureka_enabled=True, registry_refresh_seconds=90, loadbalancer_cache_seconds=300),
    ],
)
def test_grace_period_covers_the_hook_timeout_the_wait_and_the_shutdown(spec):
    grace = by_kind(spec)["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    sleep = int(prestop_script(spec).rsplit("sleep ", 1)[1].split()[0])
    timeout = 5 if spec.eureka_enabled else 0
    assert grace == timeout + sleep + 30
    assert str(grace) in guardrail(spec, "termination_grace").message


def test_shortened_prestop_sleep_is_an_overridden_warning():
    spec = java(eureka_enabled=True, overrides=(("prestop_sleep_seconds", 10), ("shutdown_seconds", 60)))
    assert 'sleep 10\nexit "$fail"' in prestop_script(spec)
    assert by_kind(spec)["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 75
    sleep = guardrail(spec, "prestop_sleep_seconds")
    assert (sleep.level, sleep.overridden) == ("warning", True)
    assert "outside the safe range >= 100" in sleep.message
    assert stop_budget(spec).sleep_short
    shutdown = guardrail(spec, "shutdown_seconds")
    assert (shutdown.level, shutdown.overridden) == ("info", True)
    # A longer wait than the window is safe.
    longer = java(eureka_enabled=True, overrides=(("prestop_sleep_seconds", 150),))
    assert guardrail(longer, "prestop_sleep_seconds").level == "info"


def test_the_stale_window_explains_its_parts():
    message = guardrail(
        java(eureka_enabled=True, loadbalancer_cache_seconds=20), "prestop_sleep_seconds"
    ).message
    assert "POST /actuator/serviceregistry" in message and "waits 85 s" in message
    for part in ("response cache 30 s", "fetch interval 30 s", "load-balancer cache 20 s", "margin 5 s"):
        assert part in message


def test_the_pre_2020_deregister_path_is_a_warning():
    rail = guardrail(
        java(eureka_enabled=True, eureka_deregister_path="/actuator/service-registry"),
        "eureka_deregister_path",
    )
    assert rail.level == "warning"
    assert "answers 404" in rail.message and "/actuator/serviceregistry" in rail.message
    assert "eureka_deregister_path" not in codes(java(eureka_enabled=True))
    assert "eureka_deregister_path" not in codes(java(eureka_deregister_path="/actuator/service-registry"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("eureka_response_cache_seconds", -1, "eureka_response_cache_seconds must be from 0 to 300 seconds."),
        ("registry_refresh_seconds", 0, "registry_refresh_seconds must be from 1 to 300 seconds."),
        ("loadbalancer_cache_seconds", 301, "loadbalancer_cache_seconds must be from 0 to 300 seconds."),
    ],
)
def test_the_cache_figures_are_bounded(field, value, message):
    assert spec_errors(java(eureka_enabled=True, **{field: value}))[field] == [message]
    assert spec_errors(java(eureka_enabled=True, **{field: "30"}))[field] == [
        f"{field} must be a whole number."
    ]


def test_java_shutdown_budget_below_spring_default_warns():
    assert guardrail(java(overrides=(("shutdown_seconds", 15),)), "shutdown_seconds").level == "warning"
    assert guardrail(make(overrides=(("shutdown_seconds", 15),)), "shutdown_seconds").level == "info"


# ---------------------------------------------------------------------------------------------------------
# Guardrails: JVM


def test_jvm_reads_memory_and_cpus_from_the_container():
    options = env(java(cpu_request="1", cpu_limit="2500m", runtime_options="-Dspring.profiles.active=prod"))
    assert options["JAVA_TOOL_OPTIONS"] == (
        "-XX:MaxRAMPercentage=75.0 -XX:InitialRAMPercentage=75.0 -XX:ActiveProcessorCount=3 "
        "-Dspring.profiles.active=prod"
    )


@pytest.mark.parametrize(
    ("cpu_request", "cpu_limit", "count"), [("2", "", 2), ("1500m", "", 2), ("100m", "", 1), ("1", "4", 4)]
)
def test_active_processor_count_is_the_rounded_up_limit_else_request(cpu_request, cpu_limit, count):
    options = env(java(cpu_request=cpu_request, cpu_limit=cpu_limit))["JAVA_TOOL_OPTIONS"]
    assert f"-XX:ActiveProcessorCount={count}" in options.split()


def test_only_java_gets_jvm_options():
    assert "JAVA_TOOL_OPTIONS" not in env(make(runtime_options="--max-old-space-size=512"))
    assert not {c for c in codes(make()) if c.startswith("jvm_")}


def test_max_ram_percentage_override_outside_safe_range_warns():
    spec = java(overrides=(("jvm_max_ram_percentage", 90),))
    assert "-XX:MaxRAMPercentage=90.0" in env(spec)["JAVA_TOOL_OPTIONS"]
    rail = guardrail(spec, "jvm_max_ram_percentage")
    assert (rail.level, rail.overridden) == ("warning", True)
    assert (
        guardrail(java(overrides=(("jvm_max_ram_percentage", 60),)), "jvm_max_ram_percentage").level == "info"
    )


@pytest.mark.parametrize(
    ("options", "memory_limit"),
    [
        ("-Xmx2g", ""),
        ("-Xmx2G -Dx=1", ""),
        ("-Dx=1 -Xmx2048m", ""),
        ("-Xmx3221225472", ""),
        ("-Xmx1g -Xmx4g", "3Gi"),  # the last -Xmx wins
        ("-XX:MaxHeapSize=3g", "2560Mi"),
    ],
)
def test_fixed_heap_not_below_the_memory_limit_warns(options, memory_limit):
    spec = java(memory_request="2Gi", memory_limit=memory_limit, runtime_options=options)
    rail = guardrail(spec, "jvm_xmx_over_limit")
    assert rail.level == "warning" and not rail.overridden
    assert "jvm_xmx_fixed" not in codes(spec)
    # The options are still passed on: the warning informs, the JVM decides.
    assert env(spec)["JAVA_TOOL_OPTIONS"].endswith(options)


def test_fixed_heap_below_the_limit_is_only_advice():
    spec = java(memory_request="2Gi", memory_limit="4Gi", runtime_options="-Xms1g -Xmx3g")
    assert guardrail(spec, "jvm_xmx_fixed").level == "info"
    assert "jvm_xmx_over_limit" not in codes(spec)
    assert not {"jvm_xmx_fixed", "jvm_xmx_over_limit"} & codes(java(runtime_options="-Xms1g -Dxmx=9g"))


def test_env_vars_that_override_java_tool_options_warn():
    assert guardrail(java(env_vars=(("_JAVA_OPTIONS", "-Xmx9g"),)), "jvm_env_override").level == "warning"


# ---------------------------------------------------------------------------------------------------------
# Guardrails: autoscaling


def test_hpa_scales_the_deployment_on_cpu_with_stabilization():
    hpa = by_kind(make(hpa_min=2, hpa_max=8, hpa_cpu_target=65))["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 8)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}},
        }
    ]
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # Small deployments must still be able to scale down: a pure percentage would round to zero pods.
    assert {"type": "Pods", "value": 1, "periodSeconds": 60} in spec["behavior"]["scaleDown"]["policies"]


def test_java_scales_on_cpu_only_by_default():
    spec = java()
    metrics = by_kind(spec)["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics] == ["cpu"]
    assert guardrail(spec, "hpa_memory_java").level == "info"


def test_memory_scaling_for_java_warns():
    spec = java(hpa_memory_target=80)
    metrics = by_kind(spec)["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics] == ["cpu", "memory"]
    rail = guardrail(spec, "hpa_memory_java")
    assert rail.level == "warning" and "heap" in rail.message


def test_memory_scaling_for_other_languages_is_plain():
    spec = make(language="php", hpa_memory_target=80)
    memory = by_kind(spec)["HorizontalPodAutoscaler"]["spec"]["metrics"][1]
    assert memory["resource"] == {
        "name": "memory",
        "target": {"type": "Utilization", "averageUtilization": 80},
    }
    assert "hpa_memory_java" not in codes(spec)
    assert not [g for g in render(spec).guardrails if g.level == "warning"]


def test_requests_always_exist_for_the_hpa_metrics():
    requests = container(make(hpa_memory_target=80))["resources"]["requests"]
    assert set(requests) == {"cpu", "memory"}


def test_short_scale_down_window_is_an_overridden_warning():
    spec = make(overrides=(("hpa_scale_down_window_seconds", 30),))
    assert (
        by_kind(spec)["HorizontalPodAutoscaler"]["spec"]["behavior"]["scaleDown"][
            "stabilizationWindowSeconds"
        ]
        == 30
    )
    rail = guardrail(spec, "hpa_scale_down_window_seconds")
    assert (rail.level, rail.overridden) == ("warning", True)


# ---------------------------------------------------------------------------------------------------------
# Knobs, determinism, storage


def test_every_applicable_knob_is_explained_once():
    rails = render(java(eureka_enabled=True)).guardrails
    assert set(OVERRIDABLE) <= {g.code for g in rails}
    assert len({g.code for g in rails}) == len(rails)
    assert all(g.level == "info" and not g.overridden for g in rails)
    assert all(isinstance(g.message, str) and g.message for g in rails)
    assert "jvm_max_ram_percentage" not in codes(make())


def test_knobs_describe_their_defaults_and_safe_minimums():
    knob = OVERRIDABLE["prestop_sleep_seconds"]
    assert knob.default(java(eureka_enabled=True, registry_refresh_seconds=20)) == 90
    assert knob.safe_minimum(java(eureka_enabled=True, registry_refresh_seconds=20)) == 90
    assert knob.default(make()) == 5
    assert OVERRIDABLE["probe_timeout_seconds"].default(make()) == 3
    assert OVERRIDABLE["probe_timeout_seconds"].safe_minimum(make()) == 3
    assert OVERRIDABLE["jvm_max_ram_percentage"].default(java()) == 75
    assert str(OVERRIDABLE["shutdown_seconds"].description)


def test_rendering_is_deterministic_and_returns_fresh_dicts():
    spec = java(eureka_enabled=True, env_vars=(("B", "1"), ("A", "2")), hpa_memory_target=80)
    first = render(spec)
    snapshot = copy.deepcopy(first.objects)
    first.objects[1]["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    first.objects[0]["metadata"]["labels"]["x"] = "y"
    second = render(spec)
    assert second.objects == snapshot
    assert json.dumps(second.objects) == json.dumps(render(spec).objects)
    assert second.guardrails == render(spec).guardrails


def test_spec_round_trips_through_json():
    spec = java(
        env_vars=(("SPRING_PROFILES_ACTIVE", "prod"), ("TZ", "Asia/Shanghai")),
        overrides=(("probe_timeout_seconds", 5),),
        hpa_memory_target=75,
        eureka_enabled=True,
    )
    data = json.loads(json.dumps(spec_to_dict(spec)))
    assert spec_from_dict(data) == spec
    assert data["env_vars"] == [["SPRING_PROFILES_ACTIVE", "prod"], ["TZ", "Asia/Shanghai"]]


def test_spec_from_dict_fills_defaults_and_rejects_unknown_or_missing_keys():
    data = spec_to_dict(make())
    minimal = {k: data[k] for k in ("project", "environment", "namespace", "language", "image")}
    minimal |= {k: data[k] for k in ("replicas", "hpa_min", "hpa_max", "cpu_request", "memory_request")}
    assert spec_from_dict(minimal) == make()
    with pytest.raises(ValueError, match="unknown workload spec keys: colour"):
        spec_from_dict({**data, "colour": "blue"})
    with pytest.raises(ValueError, match="incomplete"):
        spec_from_dict({k: v for k, v in data.items() if k != "image"})
