"""The workload request's field catalogue: the forms, the API schema and the services' type check are all
derived from it, so they agree, and a new entry shows up in every one of them."""

import dataclasses

import pytest
import yaml

from clusters.api.workload import workload_request_serializer
from clusters.forms.environments import EnvironmentConfigForm
from clusters.workload import fields as workload_fields
from clusters.workload import manifests
from clusters.workload import request as request_fields
from deploys.forms.tickets import NewTicketForm, TicketForm
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db

TICKET = workload_fields.Use.TICKET
CONFIG = workload_fields.Use.CONFIG


def _ticket_form(people, data=None, environment="test"):
    return TicketForm(data, project=people.project, environment=environment)


def test_every_entry_is_a_workload_spec_field():
    spec_fields = {f.name for f in dataclasses.fields(manifests.WorkloadSpec)}
    names = [entry.name for entry in workload_fields.CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) <= spec_fields


def test_forms_serializer_and_type_check_list_the_catalogue(people):
    ticket_names = list(workload_fields.names(TICKET))
    config_names = list(workload_fields.names(CONFIG))
    secret = ["secret_env_vars"]
    after_env = ticket_names.index("env_vars") + 1
    assert list(_ticket_form(people).fields) == ticket_names[:after_env] + secret + ticket_names[after_env:]
    # The version is the optimistic-concurrency token, not a request field.
    config_after_env = config_names.index("env_vars") + 1
    assert list(EnvironmentConfigForm().fields) == (
        config_names[:config_after_env] + secret + config_names[config_after_env:] + ["version"]
    )
    assert list(NewTicketForm(project=people.project, environment="test").fields)[0] == "environment"
    assert list(workload_request_serializer("Probe", partial=False)().fields) == ticket_names
    assert set(config_names) < set(ticket_names)
    # The services' type check covers the people's fields plus the ones the services fill in.
    assert list(request_fields.REQUEST_FIELD_TYPES) == [entry.name for entry in workload_fields.CATALOGUE]
    assert request_fields.REQUIRED_REQUEST_FIELDS == (
        "replicas",
        "hpa_min",
        "hpa_max",
        "cpu_request",
        "memory_request",
    )
    assert request_fields.REQUEST_FIELD_TYPES["eureka_enabled"] == (bool,)
    assert request_fields.REQUEST_FIELD_TYPES["env_vars"] == (list,)
    assert request_fields.REQUEST_FIELD_TYPES["cpu_request"] == (str,)
    assert request_fields.REQUEST_FIELD_TYPES["startup_seconds"] == (int,)


def test_labels_and_help_texts_come_from_the_catalogue(people):
    ticket_form, config_form = _ticket_form(people), EnvironmentConfigForm()
    serializer = workload_request_serializer("Probe", partial=False)()
    for entry in workload_fields.entries(TICKET):
        assert ticket_form.fields[entry.name].label == entry.label
        assert ticket_form.fields[entry.name].help_text == entry.help_text
        assert str(entry.label) in str(serializer.fields[entry.name].help_text)
        if CONFIG in entry.uses:
            assert config_form.fields[entry.name].label == entry.label
    assert str(ticket_form.fields["replicas"].label) == "Replicas"
    assert str(config_form.fields["hpa_cpu_target"].label) == "Target CPU utilisation (%)"
    assert str(ticket_form.fields["memory_limit"].help_text) == "Empty = same as the request."


def test_the_api_schema_documents_every_field(client, people):
    client.force_login(people.developer)
    document = yaml.safe_load(client.get("/api/schema/").content)
    schemas = document["components"]["schemas"]
    request = schemas["WorkloadRequest"]
    assert list(request["properties"]) == list(workload_fields.names(TICKET))
    assert sorted(request["required"]) == sorted(workload_fields.required_names())
    assert request["properties"]["hpa_cpu_target"]["maximum"] == 100
    assert (
        request["properties"]["memory_limit"]["description"] == "Memory limit. Empty = same as the request."
    )
    assert "required" not in schemas["WorkloadRequestChange"]
    ticket_create = schemas["TicketCreate"]["properties"]["request"]
    assert ticket_create["allOf"] == [{"$ref": "#/components/schemas/WorkloadRequest"}]


def test_a_new_entry_shows_up_in_forms_serializer_and_type_check(people, monkeypatch):
    knob = workload_fields.RequestField(
        "warmup_requests",
        workload_fields.Kind.INT,
        "Warm-up requests",
        "Requests sent before the pod is ready.",
        blank=workload_fields.Blank.OMIT,
        uses=frozenset({TICKET, CONFIG}),
        minimum=0,
        maximum=1000,
    )
    monkeypatch.setattr(workload_fields, "CATALOGUE", (*workload_fields.CATALOGUE, knob))
    assert "warmup_requests" in workload_fields.names(TICKET)
    assert _ticket_form(people).fields["warmup_requests"].label == "Warm-up requests"
    assert (
        EnvironmentConfigForm().fields["warmup_requests"].help_text
        == "Requests sent before the pod is ready."
    )
    serializer = workload_request_serializer("Probe", partial=True)()
    assert serializer.fields["warmup_requests"].max_value == 1000
    assert workload_fields.request_field_types()["warmup_requests"] == (int,)
    initial = EnvironmentConfigForm.initial_from_request({**VALID_REQUEST, "warmup_requests": 7})
    assert initial["warmup_requests"] == 7


def _post(request: dict) -> dict:
    data = {key: "" if value is None else value for key, value in request.items()}
    data["env_vars"] = "\n".join(f"{k}={v}" for k, v in request.get("env_vars") or [])
    return data


def test_ticket_form_request_is_what_it_always_was(people):
    form = _ticket_form(people, _post({**VALID_REQUEST, "memory_limit": " 1Gi "}))
    assert form.is_valid(), form.errors
    # Empty optional text is "", an empty memory target None, and an empty Eureka path or refresh interval
    # is left out so the spec's defaults apply.
    assert form.request_data == {
        **VALID_REQUEST,
        "hpa_memory_target": None,
        "cpu_limit": "",
        "memory_limit": "1Gi",
        "metrics_port": None,
        "image": "",
        # An unticked box is off (the request has no "not set" for a switch).
        "logs_to_pipeline": False,
    }
    assert form.secret_env_changes == {}


def test_config_form_request_is_what_it_always_was(people):
    # Any version passes the form; the service compares it with the environment under the lock.
    form = EnvironmentConfigForm(_post({**VALID_REQUEST, "cpu_limit": "2", "version": "0123456789abcdef"}))
    assert form.is_valid(), form.errors
    assert form.request_data() == {
        "replicas": 2,
        "hpa_min": 2,
        "hpa_max": 5,
        "hpa_cpu_target": 70,
        "hpa_memory_target": None,
        "cpu_request": "500m",
        "memory_request": "512Mi",
        "cpu_limit": "2",
        "memory_limit": "",
        "health_path": "/actuator/health",
        "metrics_port": None,
        "startup_seconds": 40,
        "runtime_options": "-Dspring.profiles.active=test",
        "env_vars": [["LOG_LEVEL", "info"]],
        "logs_to_pipeline": False,
    }
    initial = EnvironmentConfigForm.initial_from_request(VALID_REQUEST)
    assert initial["env_vars"] == "LOG_LEVEL=info"
    assert "service_type" not in initial


def test_form_errors_are_the_spec_messages(people):
    form = _ticket_form(people, _post({**VALID_REQUEST, "cpu_request": "1 core", "hpa_min": 9}))
    assert not form.is_valid()
    assert form.errors["cpu_request"] == [
        "cpu_request: '1 core' is not a Kubernetes quantity; use e.g. 1, 500m."
    ]
    assert form.errors["hpa_min"] == ["hpa_min (9) must not be greater than hpa_max (5)."]


def test_new_ticket_starts_from_the_language_defaults():
    java = workload_fields.initial_request("java")
    assert java["cpu_request"] == "1" and java["memory_request"] == "1Gi" and java["startup_seconds"] == 60
    assert java["health_path"] == "/actuator/health"
    # Spring Boot's Micrometer endpoint; everything else serves the Prometheus clients' usual /metrics.
    assert java["metrics_path"] == "/actuator/prometheus"
    go = workload_fields.initial_request("go")
    assert (go["cpu_request"], go["memory_request"], go["startup_seconds"]) == ("250m", "256Mi", 10)
    python = workload_fields.initial_request("python")
    assert python == {
        "replicas": 2,
        "hpa_min": 2,
        "hpa_max": 6,
        "hpa_cpu_target": 70,
        "cpu_request": "500m",
        "memory_request": "512Mi",
        "service_type": "ClusterIP",
        "service_port": 80,
        "container_port": 8080,
        "health_path": "/healthz",
        "metrics_path": "/metrics",
        "startup_seconds": 30,
        "eureka_deregister_path": "/actuator/serviceregistry",
        "eureka_response_cache_seconds": 30,
        "registry_refresh_seconds": 30,
        "loadbalancer_cache_seconds": 35,
    }
