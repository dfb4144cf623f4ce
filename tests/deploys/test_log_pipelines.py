"""The Log pipelines pages and API without a cluster: settings validation (nothing written on a refusal),
the write-only password, access (ops only, everyone else 404), audit, queuing a rollout, the live stream,
throughput's "no data" reasons and the sweeper."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from clusters.models import Cluster, LogPipeline
from clusters.selectors.log_pipelines import proxy_throughput
from deploys.choices import RolloutStatus
from deploys.models import LogProxyRollout
from deploys.services.log_proxy import log_proxy_deploy, log_proxy_rollouts_resume_stale
from observability import events
from observability.models import AuditEvent, LiveEvent
from opsportal.errors import StateConflict
from tests.helpers.api import api_as

pytestmark = pytest.mark.django_db

PASSWORD = "pipeline-password-5d1e"  # noqa: S105 (a test value)
GOOD = {
    "kafka_bootstrap_servers": "kafka-0.kafka:9092, kafka-1.kafka:9092",
    "default_topic": "app-logs",
    "topic_mapping": "logs:orders:*=orders-logs\nlogs:pay:*=pay-logs",
    "namespace": "logging",
    "min_replicas": 2,
    "max_replicas": 4,
}


@pytest.fixture
def cluster(db) -> Cluster:
    return Cluster.objects.create(
        name="nowhere",
        environment="test",
        api_url="https://127.0.0.1:9",
        auth_type="token",
        credential="t",
    )


def _page(cluster) -> str:
    return f"/log-pipelines/{cluster.pk}/"


def _api(cluster) -> str:
    return f"/api/log-pipelines/{cluster.pk}/"


def _audits(verb_prefix: str = "log_") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb__startswith=verb_prefix).order_by("id"))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("kafka_bootstrap_servers", "kafka-0.kafka", "host:port"),
        ("kafka_bootstrap_servers", "kafka:99999", "host:port"),
        ("kafka_bootstrap_servers", "", ""),
        ("topic_mapping", "logs:orders:*", "key-pattern=topic"),
        ("topic_mapping", "logs:orders:*=bad topic!", "Kafka topic"),
        ("default_topic", "..", "Kafka topic"),
        ("namespace", "Logging_NS", "namespace"),
        ("max_replicas", 1, "minimum"),
        ("service_address", "no port", "host:port"),
        ("kibana_url", "javascript:alert(1)", "https://"),
    ],
)
def test_bad_settings_are_refused_on_the_page_and_in_the_api_and_nothing_is_written(
    client, people, cluster, field, value, words
):
    client.force_login(people.ops)
    response = client.post(_page(cluster), {**GOOD, field: value})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors, errors
    assert words in " ".join(errors[field])
    answer = api_as(people.ops).put(_api(cluster), {**GOOD, field: value}, format="json")
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert set(body) == {"detail", "errors"} and field in body["errors"], body
    assert not LogPipeline.objects.exists()
    assert _audits() == []


def test_settings_saved_audited_and_the_password_is_write_only(client, people, cluster):
    client.force_login(people.ops)
    response = client.post(_page(cluster), {**GOOD, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    pipeline = LogPipeline.objects.get(cluster=cluster)
    assert pipeline.kafka_bootstrap_servers == "kafka-0.kafka:9092,kafka-1.kafka:9092"
    assert pipeline.topic_for("logs:pay:test") == "pay-logs"
    assert pipeline.topic_for("logs:other:test") == "app-logs"
    assert str(pipeline.password) == PASSWORD
    (created,) = _audits()
    assert created.verb == "log_pipeline.create" and created.actor == people.ops
    assert created.changes["auth"] == "password changed" and PASSWORD not in str(created.changes)
    # Encrypted at rest: the column holds ciphertext.
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM clusters_logpipeline WHERE id = %s", [pipeline.pk])
        assert PASSWORD not in cursor.fetchone()[0]
    # Never shown back: not on the page (the form's field stays empty), not in the API.
    page = client.get(_page(cluster))
    assert page.status_code == 200 and PASSWORD not in page.content.decode()
    shown = api_as(people.ops).get(_api(cluster)).json()
    assert shown["has_password"] is True and "password" not in shown
    assert shown["proxy_address"] == "logproxy.logging.svc:6379"

    # A blank password keeps it; the change is audited with old and new values.
    updated = api_as(people.ops).put(
        _api(cluster), {**GOOD, "max_replicas": 5, "password": ""}, format="json"
    )
    assert updated.status_code == 200, updated.content
    pipeline.refresh_from_db()
    assert str(pipeline.password) == PASSWORD and pipeline.max_replicas == 5
    update = _audits()[-1]
    assert update.verb == "log_pipeline.update" and update.changes["max_replicas"] == [4, 5]
    assert "auth" not in update.changes
    # Clearing it is said, too.
    api_as(people.ops).put(_api(cluster), {**GOOD, "clear_password": True}, format="json")
    pipeline.refresh_from_db()
    assert str(pipeline.password) == "" and _audits()[-1].changes["auth"] == "password removed"


@pytest.mark.parametrize("role", ["owner", "developer", "viewer", "outsider", "qa"])
def test_only_ops_may_know_the_pipelines_exist(client, people, cluster, role):
    LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092")
    user = getattr(people, role)
    client.force_login(user)
    for path in ("/log-pipelines/", _page(cluster), f"{_page(cluster)}status/"):
        assert client.get(path).status_code == 404, path
    assert client.post(_page(cluster), GOOD).status_code == 404
    assert client.post(f"{_page(cluster)}deploy/").status_code == 404
    api = api_as(user)
    assert api.get("/api/log-pipelines/").status_code == 404
    assert api.put(_api(cluster), GOOD, format="json").status_code == 404
    assert api.post(f"{_api(cluster)}deploy/").status_code == 404
    assert LogProxyRollout.objects.count() == 0 and _audits() == []
    # Nor may they follow a cluster's stream, which carries its rollouts.
    assert not events.stream_allowed(user, events.cluster_stream(cluster.pk))
    assert events.stream_allowed(people.ops, events.cluster_stream(cluster.pk))


def test_the_list_shows_every_cluster_and_its_pipeline(client, people, cluster):
    other = Cluster.objects.create(
        name="bare", environment="prod", api_url="https://127.0.0.1:9", auth_type="token", credential="t"
    )
    LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092", namespace="logs")
    client.force_login(people.ops)
    page = client.get("/log-pipelines/").content.decode()
    assert "kafka:9092" in page and f'href="/log-pipelines/{other.pk}/"' in page
    rows = api_as(people.ops).get("/api/log-pipelines/").json()
    by_name = {row["cluster_name"]: row for row in rows}
    assert by_name["nowhere"]["pipeline"]["namespace"] == "logs"
    assert by_name["bare"]["pipeline"] is None


def test_deploy_queues_one_rollout_per_pipeline_audited_and_announced_to_ops(people, cluster, settings):
    settings.LOGPROXY_GIT_PROJECT = "ops/logproxy"
    api = api_as(people.ops)
    refused = api.post(f"{_api(cluster)}deploy/")
    assert refused.status_code == 400 and "settings" in refused.json()["detail"]
    LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092")
    queued = api.post(f"{_api(cluster)}deploy/")
    assert queued.status_code == 202, queued.content
    rollout = LogProxyRollout.objects.get(pk=queued.json()["id"])
    assert rollout.status == RolloutStatus.QUEUED and rollout.git_project == "ops/logproxy"
    assert rollout.recipe.language == "python" and rollout.jenkins_job == "opsportal-logproxy"
    assert rollout.version.endswith(f"-u{people.ops.pk}")
    audit = _audits("log_proxy.")[-1]
    assert audit.verb == "log_proxy.deploy" and audit.project is None
    assert audit.changes["cluster"] == "nowhere" and audit.changes["source"] == "ops/logproxy@main"
    second = api.post(f"{_api(cluster)}deploy/")
    assert second.status_code == 409 and f"#{rollout.pk}" in second.json()["detail"]
    with pytest.raises(StateConflict):
        log_proxy_deploy(actor=people.ops, cluster=cluster)
    assert LogProxyRollout.objects.count() == 1
    stream = events.cluster_stream(cluster.pk)
    event = LiveEvent.objects.filter(stream=stream).last()
    assert event is not None and event.type == "logproxy-rollout-changed"
    assert event.payload["rollout"] == rollout.pk
    state = api.get(f"{_api(cluster)}rollouts/{rollout.pk}/").json()
    assert state["status"] == "queued" and state["cluster"] == cluster.pk


def test_the_page_says_when_there_is_no_rollout_yet_and_the_deploy_button_posts(
    client, people, cluster, settings
):
    settings.LOGPROXY_GIT_PROJECT = "ops/logproxy"
    LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092")
    client.force_login(people.ops)
    page = client.get(_page(cluster)).content.decode()
    assert 'id="rollout-none"' in page and 'id="deploy-log-proxy"' in page
    assert f'data-live-stream="cluster.{cluster.pk}"' in page
    response = client.post(f"{_page(cluster)}deploy/")
    assert response.status_code == 302
    page = client.get(_page(cluster)).content.decode()
    assert 'id="rollout-summary"' in page and "Queued" in page
    # What the page re-fetches on each live status change: the rollout's section alone.
    part = client.get(_page(cluster), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="rollout-summary"' in part and "<html" not in part and 'data-state="todo"' in part


def test_throughput_says_why_it_has_no_numbers(people, cluster, settings):
    pipeline = LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092")
    settings.PROMETHEUS_URL = ""
    assert "PROMETHEUS_URL" in proxy_throughput(pipeline).reason
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # nobody listens
    off = proxy_throughput(pipeline)
    assert off.lines_in is None and "Prometheus could not answer" in off.reason
    # The status section carries both reasons in words, not an error page.
    status = api_as(people.ops).get(f"{_api(cluster)}status/")
    assert status.status_code == 200, status.content
    body = status.json()
    assert body["proxy"]["error"] and not body["proxy"]["deployed"]
    assert body["throughput"]["lines_in"] is None and body["throughput"]["reason"]


def test_a_rollout_whose_worker_was_lost_is_resumed_from_its_step(people, cluster, settings):
    pipeline = LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092")
    rollout = LogProxyRollout.objects.create(
        pipeline=pipeline,
        created_by=people.ops,
        git_project="ops/logproxy",
        branch="main",
        version="v1",
        status=RolloutStatus.APPLYING,
        step_task_id="dead-worker",
        heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 5),
    )
    assert log_proxy_rollouts_resume_stale() == (1, 0)
    rollout.refresh_from_db()
    assert rollout.step_task_id not in ("", "dead-worker") and rollout.resumes == 1
    resume = _audits("log_proxy.resume")[-1]
    assert resume.target_id == str(rollout.pk) and resume.changes["status"] == "applying"
    # Past the resumes, it is failed with the cause.
    LogProxyRollout.objects.filter(pk=rollout.pk).update(
        resumes=settings.RUN_MAX_RESUMES, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert log_proxy_rollouts_resume_stale() == (0, 1)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.FAILED and "lost" in rollout.error
