"""A service that sends its logs to the cluster's log pipeline: the request's switch becomes LOG_REDIS_URL
and LOG_REDIS_KEY in the container, the URL from the env Secret when it carries the proxy's password, and
never in clear in the spec or what people see. No database: the objects are built in memory."""

import json

import pytest
from django.core.exceptions import ValidationError

from clusters.models import Cluster, LogPipeline
from clusters.workload import fields as workload_fields
from clusters.workload import manifests, secret_env
from clusters.workload.request import build_spec, env_secret_values, log_secret_values, masked_url
from projects.models import Project
from tests.fixtures.clusters import VALID_REQUEST

PASSWORD = "Pr0xy-s3cret/with:odd@chars"
LOGS = {**VALID_REQUEST, "logs_to_pipeline": True}


def _cluster() -> Cluster:
    return Cluster(name="shanghai-test", environment="test", namespace_template="{project}-{environment}")


def _pipeline(cluster: Cluster, password: str = "") -> LogPipeline:
    return LogPipeline(cluster=cluster, kafka_bootstrap_servers="kafka-0.kafka:9092", password=password)


def _spec(request: dict, *, pipeline: LogPipeline | None, cluster: Cluster | None = None, stored: str = ""):
    project = Project(name="orders", language="java")
    cluster = cluster if cluster is not None else (pipeline.cluster if pipeline else _cluster())
    values = env_secret_values(stored=stored, request=request, log_pipeline=pipeline)
    return build_spec(
        project=project,
        environment="test",
        cluster=cluster,
        request=request,
        overrides={},
        secret_env_digest=secret_env.digest(values),
        log_pipeline=pipeline,
    )


def _container(rendered: manifests.Rendered) -> dict:
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _env(rendered: manifests.Rendered) -> dict[str, dict]:
    return {e["name"]: e for e in _container(rendered).get("env", [])}


def _annotations(rendered: manifests.Rendered) -> dict:
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    return deployment["spec"]["template"]["metadata"]["annotations"]


def test_without_a_password_the_address_is_a_plain_value_and_no_secret_is_rendered():
    rendered = manifests.render(_spec(LOGS, pipeline=_pipeline(_cluster())))
    env = _env(rendered)
    assert env["LOG_REDIS_URL"] == {
        "name": "LOG_REDIS_URL",
        "value": "redis://logproxy.opsportal-logging.svc:6379/0",
    }
    assert env["LOG_REDIS_KEY"] == {"name": "LOG_REDIS_KEY", "value": "logs:orders:test"}
    assert [o["kind"] for o in rendered.objects if o["kind"] == "Secret"] == []
    assert manifests.SECRET_ENV_DIGEST_ANNOTATION not in _annotations(rendered)
    guardrail = next(g for g in rendered.guardrails if g.code == "log_pipeline")
    assert "LOG_REDIS_KEY=logs:orders:test" in guardrail.message


def test_with_a_password_the_url_comes_from_the_env_secret_and_is_nowhere_in_clear():
    pipeline = _pipeline(_cluster(), PASSWORD)
    spec = _spec(LOGS, pipeline=pipeline)
    rendered = manifests.render(spec)
    env = _env(rendered)
    assert env["LOG_REDIS_URL"] == {
        "name": "LOG_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "orders-env", "key": "LOG_REDIS_URL"}},
    }
    assert env["LOG_REDIS_KEY"]["value"] == "logs:orders:test"
    secret = next(o for o in rendered.objects if o["kind"] == "Secret")
    assert secret["metadata"]["name"] == "orders-env" and "data" not in secret
    # The Secret comes before the Deployment, so new pods never refer to a key that is not there yet.
    kinds = [o["kind"] for o in rendered.objects]
    assert kinds.index("Secret") < kinds.index("Deployment")
    # The values only join at apply time; the digest in the pod template covers them.
    values = log_secret_values(request=LOGS, log_pipeline=pipeline)
    assert values == {"LOG_REDIS_URL": pipeline.redis_url()}
    assert PASSWORD.replace("/", "%2F").replace(":", "%3A").replace("@", "%40") in values["LOG_REDIS_URL"]
    assert _annotations(rendered)[manifests.SECRET_ENV_DIGEST_ANNOTATION] == secret_env.digest(values)
    # Masked for people: the guardrail, the spec and every rendered object.
    guardrail = next(g for g in rendered.guardrails if g.code == "log_pipeline")
    assert "LOG_REDIS_URL=redis://:********@logproxy.opsportal-logging.svc:6379/0" in guardrail.message
    assert "from the Secret orders-env" in guardrail.message
    for text in (json.dumps(manifests.spec_to_dict(spec)), json.dumps(rendered.objects), guardrail.message):
        assert "Pr0xy" not in text


def test_a_changed_password_changes_the_pod_template():
    cluster = _cluster()
    before = manifests.render(_spec(LOGS, pipeline=_pipeline(cluster, PASSWORD)))
    after = manifests.render(_spec(LOGS, pipeline=_pipeline(cluster, "rotated-password")))
    digest = manifests.SECRET_ENV_DIGEST_ANNOTATION
    assert _annotations(before)[digest] != _annotations(after)[digest]


def test_the_log_url_joins_the_secret_variables():
    stored = secret_env.dump({"DB_PASSWORD": "db-secret"})
    request = secret_env.with_names(LOGS, {"DB_PASSWORD": "db-secret"})
    pipeline = _pipeline(_cluster(), PASSWORD)
    values = env_secret_values(stored=stored, request=request, log_pipeline=pipeline)
    assert values == {"DB_PASSWORD": "db-secret", "LOG_REDIS_URL": pipeline.redis_url()}
    env = _env(manifests.render(_spec(request, pipeline=pipeline, stored=stored)))
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "orders-env"
    assert env["LOG_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "LOG_REDIS_URL"
    # Off, or without a password, the Secret holds the variables only.
    off = {**request, "logs_to_pipeline": False}
    assert env_secret_values(stored=stored, request=off, log_pipeline=pipeline) == {
        "DB_PASSWORD": "db-secret"
    }
    plain = _pipeline(_cluster())
    assert env_secret_values(stored=stored, request=request, log_pipeline=plain) == {
        "DB_PASSWORD": "db-secret"
    }


def test_off_nothing_changes():
    rendered = manifests.render(_spec({**VALID_REQUEST, "logs_to_pipeline": False}, pipeline=None))
    assert not {"LOG_REDIS_URL", "LOG_REDIS_KEY"} & set(_env(rendered))
    assert not any(g.code == "log_pipeline" for g in rendered.guardrails)
    assert manifests.render(_spec(VALID_REQUEST, pipeline=None)).objects == rendered.objects


def test_a_cluster_without_a_pipeline_is_refused_with_a_clear_message():
    with pytest.raises(ValidationError) as caught:
        _spec(LOGS, pipeline=None, cluster=_cluster())
    message = caught.value.message_dict["logs_to_pipeline"][0]
    assert "The cluster shanghai-test has no log pipeline yet" in message
    assert "ops must set one up" in message


def test_before_a_cluster_is_chosen_the_request_is_valid_and_says_where_the_address_will_come_from():
    spec = build_spec(
        project=Project(name="orders", language="java"),
        environment="test",
        cluster=None,
        request=LOGS,
        overrides={},
    )
    rendered = manifests.render(spec)
    assert not {"LOG_REDIS_URL", "LOG_REDIS_KEY"} & set(_env(rendered))
    guardrail = next(g for g in rendered.guardrails if g.code == "log_pipeline")
    assert "cluster chosen at approval" in guardrail.message


@pytest.mark.parametrize("name", ["LOG_REDIS_URL", "LOG_REDIS_KEY"])
def test_the_service_may_not_set_the_two_names_itself_while_it_logs_to_the_pipeline(name):
    request = {**LOGS, "env_vars": [[name, "redis://elsewhere:6379"]]}
    with pytest.raises(ValidationError) as caught:
        _spec(request, pipeline=_pipeline(_cluster()))
    assert caught.value.message_dict["env_vars"] == [
        f"environment variable '{name}' is set by the platform; use logs_to_pipeline instead."
    ]
    # Without the pipeline the names are the service's own.
    _spec({**request, "logs_to_pipeline": False}, pipeline=None)


def test_the_switch_must_be_a_boolean():
    with pytest.raises(ValidationError) as caught:
        _spec({**VALID_REQUEST, "logs_to_pipeline": "yes"}, pipeline=None)
    assert caught.value.message_dict == {"logs_to_pipeline": ["Expected bool."]}


def test_masked_url():
    assert masked_url("redis://:s3cret@proxy:6379/0") == "redis://:********@proxy:6379/0"
    assert masked_url("redis://user:s3cret@[::1]:6379/0") == "redis://:********@[::1]:6379/0"
    assert masked_url("redis://proxy:6379/0") == "redis://proxy:6379/0"


def test_the_catalogue_entry_is_on_the_ticket_and_the_configuration_page():
    entry = workload_fields.BY_NAME["logs_to_pipeline"]
    assert entry.kind == workload_fields.Kind.BOOL
    assert entry.uses == {workload_fields.Use.TICKET, workload_fields.Use.CONFIG}
    assert str(entry.label) == "Send logs to the cluster's log pipeline"
    assert "LOG_REDIS_URL" in str(entry.help_text) and "LOG_REDIS_KEY" in str(entry.help_text)
    assert "logs_to_pipeline" not in workload_fields.initial_request("go")


def test_a_request_older_than_the_switch_reads_as_off():
    config = workload_fields.Use.CONFIG
    assert workload_fields.with_switches_off(VALID_REQUEST, config) == {
        **VALID_REQUEST,
        "logs_to_pipeline": False,
    }
    on = {**VALID_REQUEST, "logs_to_pipeline": True}
    assert workload_fields.with_switches_off(on, config) == on
    # A switch of the ticket only (eureka_enabled) is not the configuration page's to fill in.
    assert "eureka_enabled" not in workload_fields.with_switches_off({}, config)
