"""The environment page's search "from the log pipeline" against a real Kafka: one service's lines only,
by level (at or above), text and window, newest first and capped; its API twin with its 400 and 502; the
section without a pipeline; the Kibana link; access as for pod logs."""

from __future__ import annotations

import pytest

from clusters.models import LogPipeline, ProjectEnvironment
from sandbox.procs import free_port
from tests.helpers.log_pipeline import line, minutes_ago_ms, pipeline_environment, produce

pytestmark = [pytest.mark.django_db, pytest.mark.services]

PAGE = "/projects/orders/env/test/"
SEARCH = PAGE + "pipeline-logs/"
API = "/api/projects/orders/environments/test/pipeline-logs/"
KEY = "logs:orders:test"


@pytest.fixture
def env(people, kafka_server) -> ProjectEnvironment:
    return pipeline_environment(people, kafka_server.bootstrap)


@pytest.fixture
def lines(env, kafka_server):
    """This service's lines and its neighbours' on the same topic."""
    topic = env.cluster.log_pipeline.default_topic
    produce(
        kafka_server.bootstrap,
        topic,
        [
            (KEY, line("INFO", "GET /orders 200", status=200), minutes_ago_ms(30)),
            (KEY, line("DEBUG", "cache miss for order 7")),
            (KEY, line("INFO", "GET /orders/7 200", status=200)),
            (KEY, line("WARN", "slow query: 812 ms")),
            (KEY, line("ERROR", "Payment gateway timed out", order=7)),
            (KEY, b"plain text from a shell script"),
            ("logs:billing:test", line("ERROR", "billing: Payment refused")),
            ("logs:orders:prod", line("ERROR", "prod: Payment gateway timed out")),
        ],
    )
    return topic


def _messages(body: dict) -> list[str]:
    return [item["msg"] for item in body["lines"]]


def test_the_search_shows_this_services_lines_newest_first(client, people, lines):
    client.force_login(people.viewer)
    body = client.get(API).json()
    assert body["enabled"] and body["key"] == KEY and body["topic"] == lines
    assert _messages(body) == [
        "plain text from a shell script",
        "Payment gateway timed out",
        "slow query: 812 ms",
        "GET /orders/7 200",
        "cache miss for order 7",
    ]
    error = body["lines"][1]
    assert error["level"] == "ERROR" and error["logger"] == "http" and error["json"]
    assert ["order", "7"] in error["fields"]
    assert '"msg": "Payment gateway timed out"' in error["raw"]
    assert body["lines"][0]["json"] is False and body["lines"][0]["level"] == ""
    assert body["capped"] is False and body["complete"] is True


def test_level_text_window_and_cap(client, people, lines):
    client.force_login(people.viewer)
    assert _messages(client.get(API, {"level": "warn"}).json()) == [
        "Payment gateway timed out",
        "slow query: 812 ms",
    ]
    assert _messages(client.get(API, {"level": "ERROR"}).json()) == ["Payment gateway timed out"]
    assert _messages(client.get(API, {"q": "PAYMENT"}).json()) == ["Payment gateway timed out"]
    # The text is looked for in the whole line: the error's "order" field matches too; DEBUG is below INFO.
    assert _messages(client.get(API, {"q": "order", "level": "INFO"}).json()) == [
        "Payment gateway timed out",
        "GET /orders/7 200",
    ]
    hour = client.get(API, {"minutes": 60, "q": "GET /orders"}).json()
    assert _messages(hour) == ["GET /orders/7 200", "GET /orders 200"]
    capped = client.get(API, {"limit": 2}).json()
    assert capped["capped"] is True and len(capped["lines"]) == 2
    assert _messages(capped) == ["plain text from a shell script", "Payment gateway timed out"]


def test_the_page_fragment_draws_the_lines_and_says_when_the_cap_was_hit(client, people, lines):
    client.force_login(people.developer)
    html = client.get(SEARCH, {"limit": 2, "level": "INFO"}, headers={"HX-Request": "true"}).content.decode()
    assert 'id="pipeline-capped"' in html and "only the newest 2 are shown" in html
    assert "Payment gateway timed out" in html and 'data-level="ERROR"' in html
    assert "text-bg-danger" in html and "<details" in html
    assert "billing" not in html and "prod:" not in html
    page = client.get(SEARCH, {"q": "slow"})
    assert page.status_code == 200 and "slow query: 812 ms" in page.content.decode()
    assert "From the log pipeline" in page.content.decode()


def test_bad_parameters_are_a_400_with_a_message(client, people, env):
    client.force_login(people.viewer)
    for params, field in (
        ({"minutes": "soon"}, "minutes"),
        ({"minutes": "0"}, "minutes"),
        ({"minutes": "100000"}, "minutes"),
        ({"level": "LOUD"}, "level"),
        ({"limit": "-1"}, "limit"),
        ({"q": "x" * 201}, "q"),
    ):
        answer = client.get(API, params)
        assert answer.status_code == 400, params
        assert field in str(answer.json()), answer.json()
    page = client.get(SEARCH, {"level": "LOUD"})
    assert page.status_code == 400 and "level must be one of" in page.content.decode()
    fragment = client.get(SEARCH, {"level": "LOUD"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and 'id="pipeline-search-error"' in fragment.content.decode()


def test_kafka_unreachable_is_a_502_and_a_message_never_a_500(client, people, env, settings):
    settings.LOG_PIPELINE_KAFKA_TIMEOUT = 2
    LogPipeline.objects.filter(cluster=env.cluster).update(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    client.force_login(people.viewer)
    answer = client.get(API)
    assert answer.status_code == 502
    assert "cannot connect to Kafka" in str(answer.json())
    page = client.get(SEARCH)
    assert page.status_code == 502 and "Kafka could not be read" in page.content.decode()
    fragment = client.get(SEARCH, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "Kafka could not be read" in fragment.content.decode()


def test_without_a_pipeline_the_section_says_how_ops_set_one_up(client, people, env):
    LogPipeline.objects.filter(cluster=env.cluster).delete()
    client.force_login(people.viewer)
    html = client.get(PAGE).content.decode()
    assert 'id="pipeline-not-configured"' in html and "Log pipelines page" in html
    assert 'id="pipeline-search"' not in html and 'data-ws-url="/ws/pipeline/' not in html
    body = client.get(API).json()
    assert body["enabled"] is False and body["lines"] == [] and "No log pipeline" in body["error"]


def test_the_kibana_link_is_filled_in_and_escaped(client, people, env):
    LogPipeline.objects.filter(cluster=env.cluster).update(
        kibana_url='https://kibana.example.com/app/discover#/?q=key:"{key}"&t={topic}&p={project}&e={environment}'
    )
    client.force_login(people.viewer)
    html = client.get(PAGE).content.decode()
    topic = env.cluster.log_pipeline.default_topic
    expected = f"https://kibana.example.com/app/discover#/?q=key:&quot;logs%3Aorders%3Atest&quot;&amp;t={topic}&amp;p=orders&amp;e=test"
    assert f'id="pipeline-kibana" href="{expected}"' in html
    assert client.get(API).json()["kibana_url"].startswith("https://kibana.example.com/app/discover#/?q=key:")
    LogPipeline.objects.filter(cluster=env.cluster).update(kibana_url="javascript:alert({key})")
    assert 'id="pipeline-kibana"' not in client.get(PAGE).content.decode()


def test_access_is_as_for_pod_logs(client, people, env):
    pod_logs = PAGE + "pods/orders-1/logs/"
    for who, status in (
        (people.outsider, 404),
        (people.viewer, 200),
        (people.tester, 200),
        (people.ops, 200),
    ):
        client.force_login(who)
        assert client.get(API).status_code == status, who
        assert client.get(SEARCH).status_code == status, who
    client.force_login(people.outsider)
    assert client.get(pod_logs).status_code == 404  # the same door, the same answer
    client.logout()
    assert client.get(API).status_code in (401, 403)
    assert client.get(SEARCH).status_code == 302
