"""The onboarding ticket's "send logs to the cluster's log pipeline": refused at submission when no cluster
of the environment has a pipeline and at approval on a cluster without one (service, API, form and page,
nothing written), and the preview shows LOG_REDIS_URL with its password masked and LOG_REDIS_KEY. No
cluster is reached: the preview's comparison with live objects fails and says so."""

import base64
import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from clusters.models import Cluster, LogPipeline
from deploys import services
from deploys.choices import TicketStatus
from deploys.models import OnboardingTicket
from observability.models import AuditEvent
from tests.fixtures.clusters import VALID_REQUEST
from tests.helpers.api import api_as

pytestmark = pytest.mark.django_db

PASSWORD = "Pr0xy-pa55-for-logs"
LOGS = {**VALID_REQUEST, "logs_to_pipeline": True}
MASKED = "redis://:********@logproxy.opsportal-logging.svc:6379/0"


def _cluster(name: str) -> Cluster:
    # Nobody listens there: the preview says it could not compare, everything else works.
    return Cluster.objects.create(
        name=name, environment="test", api_url="https://127.0.0.1:9", auth_type="token", credential="t"
    )


def _pipeline(cluster: Cluster, password: str = PASSWORD) -> LogPipeline:
    return LogPipeline.objects.create(
        cluster=cluster, kafka_bootstrap_servers="kafka-0:9092", password=password
    )


def _assert_no_password(text: str) -> None:
    assert PASSWORD not in text
    assert base64.b64encode(PASSWORD.encode()).decode() not in text


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("verb", "changes", "target_repr")))


def _form(**changes) -> dict:
    return {**VALID_REQUEST, "environment": "test", "env_vars": "LOG_LEVEL=info", "submit": "1", **changes}


def test_submission_is_refused_while_no_cluster_of_the_environment_has_a_pipeline(people):
    _cluster("shanghai-test")
    draft = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=LOGS
    )
    with pytest.raises(ValidationError) as caught:
        services.ticket_submit(actor=people.developer, ticket_id=draft.pk)
    assert caught.value.message_dict["logs_to_pipeline"] == [
        "No test cluster has a log pipeline yet: ops must set one up before a service can send its logs "
        "there, or turn this off."
    ]
    draft.refresh_from_db()
    assert draft.status == TicketStatus.DRAFT
    assert not AuditEvent.objects.filter(verb="ticket.submit").exists()
    services.ticket_withdraw(actor=people.developer, ticket_id=draft.pk)
    draft.delete()

    # Filed and submitted in one go: nothing is written at all.
    with pytest.raises(ValidationError):
        services.ticket_create(
            actor=people.developer, project=people.project, environment="test", request=LOGS, submit=True
        )
    assert not OnboardingTicket.objects.exists()


def test_the_api_refuses_then_files_once_ops_set_a_pipeline_up(people):
    cluster = _cluster("shanghai-test")
    api = api_as(people.developer)
    body = {"environment": "test", "request": LOGS, "submit": True}
    response = api.post("/api/projects/orders/tickets/", body, format="json")
    assert response.status_code == 400
    assert "ops must set one up" in str(response.json()["errors"]["logs_to_pipeline"])
    assert not OnboardingTicket.objects.exists()

    _pipeline(cluster)
    response = api.post("/api/projects/orders/tickets/", body, format="json")
    assert response.status_code == 201, response.json()
    ticket = OnboardingTicket.objects.get()
    assert (ticket.status, ticket.request["logs_to_pipeline"]) == (TicketStatus.SUBMITTED, True)
    assert response.json()["request"]["logs_to_pipeline"] is True
    # The schema documents the switch with the request's other fields.
    schema = api.get("/api/schema/?format=json").json()
    description = schema["components"]["schemas"]["WorkloadRequest"]["properties"]["logs_to_pipeline"]
    assert description["type"] == "boolean" and "LOG_REDIS_URL" in description["description"]


def test_the_form_shows_the_refusal_on_the_field_and_files_once_ops_set_a_pipeline_up(client, people):
    cluster = _cluster("shanghai-test")
    client.force_login(people.developer)
    page = client.get("/projects/orders/tickets/new/").content.decode()
    assert 'name="logs_to_pipeline"' in page and "Send logs to the cluster&#x27;s log pipeline" in page

    response = client.post("/projects/orders/tickets/new/", _form(logs_to_pipeline="on"))
    assert response.status_code == 200
    assert 'data-field="logs_to_pipeline"' in response.content.decode()
    assert not OnboardingTicket.objects.exists()

    _pipeline(cluster)
    response = client.post("/projects/orders/tickets/new/", _form(logs_to_pipeline="on"))
    assert response.status_code == 302
    ticket = OnboardingTicket.objects.get()
    assert ticket.status == TicketStatus.SUBMITTED and ticket.request["logs_to_pipeline"] is True


def test_approval_on_a_cluster_without_a_pipeline_is_refused_and_changes_nothing(
    client, people, django_capture_on_commit_callbacks
):
    with_pipeline, without = _cluster("with-pipeline"), _cluster("without-pipeline")
    _pipeline(with_pipeline)
    ticket = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=LOGS, submit=True
    )
    with pytest.raises(ValidationError) as caught:
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk, cluster_id=without.pk)
    assert (
        "The cluster without-pipeline has no log pipeline yet"
        in caught.value.message_dict["logs_to_pipeline"][0]
    )
    ticket.refresh_from_db()
    assert (ticket.status, ticket.cluster_id) == (TicketStatus.SUBMITTED, None)
    assert not AuditEvent.objects.filter(verb="ticket.approve").exists()

    # The page says it as a message and leaves the ticket as it was.
    client.force_login(people.ops)
    response = client.post(
        f"/projects/orders/tickets/{ticket.pk}/approve/", {"cluster": without.pk}, follow=True
    )
    assert "The cluster without-pipeline has no log pipeline yet" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SUBMITTED
    # So does the API, in the one error shape.
    response = api_as(people.ops).post(
        f"/api/projects/orders/tickets/{ticket.pk}/approve/", {"cluster": without.pk}, format="json"
    )
    assert response.status_code == 400
    assert "logs_to_pipeline" in response.json()["errors"]

    with django_capture_on_commit_callbacks(execute=False):
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk, cluster_id=with_pipeline.pk)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.cluster_id) == (TicketStatus.APPROVED, with_pipeline.pk)
    _assert_no_password(_audit_text())


def test_the_preview_shows_the_two_variables_with_the_password_masked(client, people):
    cluster = _cluster("shanghai-test")
    _pipeline(cluster)
    ticket = services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request=LOGS,
        secret_env_vars={"DB_PASSWORD": "db-secret-value"},
        submit=True,
    )
    client.force_login(people.ops)
    response = client.get(f"/api/projects/orders/tickets/{ticket.pk}/preview/")
    assert response.status_code == 200
    body = response.json()
    assert body["error"] == "" and body["cluster"] == "shanghai-test"
    assert body["log_env"] == {"LOG_REDIS_URL": MASKED, "LOG_REDIS_KEY": "logs:orders:test"}
    deployment = next(o for o in body["objects"] if o["kind"] == "Deployment")["yaml"]
    assert "name: LOG_REDIS_KEY\n          value: logs:orders:test" in deployment
    assert "name: orders-env\n              key: LOG_REDIS_URL" in deployment
    secret = next(o for o in body["objects"] if o["kind"] == "Secret")["yaml"]
    assert "LOG_REDIS_URL: '<secret:" in secret and "DB_PASSWORD: '<secret:" in secret
    assert any(g["code"] == "log_pipeline" and MASKED in g["message"] for g in body["guardrails"])
    _assert_no_password(response.content.decode())
    assert "db-secret-value" not in response.content.decode()

    page = client.get(f"/projects/orders/tickets/{ticket.pk}/preview/").content.decode()
    assert 'id="log-pipeline-env"' in page
    assert (
        f"<code>LOG_REDIS_URL={MASKED}</code>" in page
        and "<code>LOG_REDIS_KEY=logs:orders:test</code>" in page
    )
    _assert_no_password(page)
    detail = client.get(f"/projects/orders/tickets/{ticket.pk}/").content.decode()
    # The ticket's page renders without a cluster until approval: it says where the address will come from.
    assert "from the log pipeline of the cluster chosen at approval" in detail
    _assert_no_password(detail)


def test_without_a_password_the_preview_shows_the_plain_address(client, people):
    _pipeline(_cluster("shanghai-test"), password="")
    ticket = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=LOGS, submit=True
    )
    client.force_login(people.developer)
    body = client.get(f"/api/projects/orders/tickets/{ticket.pk}/preview/").json()
    assert body["log_env"]["LOG_REDIS_URL"] == "redis://logproxy.opsportal-logging.svc:6379/0"
    assert [o["kind"] for o in body["objects"] if o["kind"] == "Secret"] == []


def test_an_edit_that_sets_the_two_names_by_hand_is_refused(people):
    ticket = services.ticket_create(
        actor=people.developer, project=people.project, environment="test", request=LOGS
    )
    with pytest.raises(ValidationError) as caught:
        services.ticket_update(
            actor=people.developer,
            ticket_id=ticket.pk,
            request={**LOGS, "env_vars": [["LOG_REDIS_KEY", "logs:someone-else:test"]]},
        )
    assert "set by the platform; use logs_to_pipeline instead" in caught.value.message_dict["env_vars"][0]


@pytest.fixture
def english_afterwards(settings):
    yield
    # A page served in Chinese leaves the language active in this thread; later tests expect English.
    translation.activate(settings.LANGUAGE_CODE)


def test_the_switch_and_its_refusal_in_chinese(client, people, english_afterwards):
    _cluster("shanghai-test")
    client.force_login(people.developer)
    page = client.get("/projects/orders/tickets/new/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "将日志发送到集群的日志管道" in page
    response = client.post(
        "/projects/orders/tickets/new/", _form(logs_to_pipeline="on"), HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert "test 环境的集群都还没有配置日志管道" in response.content.decode()
