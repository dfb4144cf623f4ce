"""The live tail against real Kafka, a real Celery worker, real Daphne and Redis: one task chain per
environment however many sockets watch, lines delivered to the environment's group (once per socket),
and the chain ends when nobody watches."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlparse

import pytest
from channels.layers import get_channel_layer
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from clusters.services import pipeline_tail
from projects.services import member_remove
from tests.helpers.channel_layer import layer_call
from tests.helpers.log_pipeline import line, pipeline_environment, produce

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

KEY = "logs:orders:test"


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _socket(base_url: str, cookie: str):
    return connect(
        f"ws://{urlparse(base_url).netloc}/ws/pipeline/orders/test/",
        additional_headers={"Origin": base_url, "Cookie": f"sessionid={cookie}"},
        open_timeout=10,
    )


def _until(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def _messages_of(ws, wanted: int, *, timeout: float) -> list[str]:
    """The tail lines' messages a socket receives until ``wanted`` arrived, plus whatever else comes in the
    next second (a second chain would deliver everything twice)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    while True:
        now = time.monotonic()
        end = quiet_until or deadline
        if now >= end:
            return got
        try:
            message = json.loads(ws.recv(timeout=end - now))
        except TimeoutError:
            return got
        if message["type"] == "pipeline-lines":
            got += [item["msg"] for item in message["lines"]]
            if len(got) >= wanted and quiet_until is None:
                quiet_until = time.monotonic() + 1.0


@pytest.fixture
def env(people, kafka_server):
    return pipeline_environment(people, kafka_server.bootstrap)


def test_two_viewers_share_one_chain_that_delivers_new_lines_and_ends_without_viewers(
    people, env, kafka_server, celery_worker_process, daphne_server
):
    topic = env.cluster.log_pipeline.default_topic
    first = _socket(daphne_server, _cookie(people.viewer))
    assert json.loads(first.recv(timeout=10))["type"] == "pipeline-started"
    token = _until(lambda: pipeline_tail.chain_token(env.pk), timeout=5, what="no chain started")
    second = _socket(daphne_server, _cookie(people.developer))
    assert json.loads(second.recv(timeout=10))["type"] == "pipeline-started"
    assert pipeline_tail.chain_token(env.pk) == token  # the second viewer joined the running chain
    assert pipeline_tail.viewers_count(env.pk) == 2

    mark = uuid.uuid4().hex[:8]
    sent = [f"{mark} request {i}" for i in range(3)]
    started = time.monotonic()
    produce(
        kafka_server.bootstrap,
        topic,
        [(KEY, line("INFO", text)) for text in sent]
        + [("logs:billing:test", line("INFO", f"{mark} billing"))],
    )
    assert _messages_of(first, 3, timeout=15) == sent  # each once, in order, none of billing's
    assert time.monotonic() - started < 10
    assert _messages_of(second, 3, timeout=5) == sent
    assert pipeline_tail.chain_token(env.pk) == token

    first.close()
    _until(lambda: pipeline_tail.viewers_count(env.pk) == 1, timeout=5, what="the closed socket still counts")
    assert pipeline_tail.chain_token(env.pk) == token  # someone still watches
    second.close()
    _until(lambda: pipeline_tail.chain_token(env.pk) is None, timeout=10, what="the chain did not end")


def test_a_viewer_that_stops_refreshing_stops_counting_and_a_new_one_starts_a_new_chain(
    people, env, kafka_server, celery_worker_process, settings
):
    settings.LOG_PIPELINE_TAIL_VIEWER_SECONDS = 2  # how long this test process's viewers count
    layer = get_channel_layer()
    channel = layer_call(layer.new_channel)
    layer_call(layer.group_add, pipeline_tail.group_name(env.pk), channel)
    assert pipeline_tail.viewer_refresh(environment_id=env.pk, viewer="browser-a") is True
    assert pipeline_tail.viewer_refresh(environment_id=env.pk, viewer="browser-b") is False
    token = pipeline_tail.chain_token(env.pk)

    mark = uuid.uuid4().hex[:8]
    produce(kafka_server.bootstrap, env.cluster.log_pipeline.default_topic, [(KEY, line("WARN", mark))])
    message = layer_call(layer.receive, channel)
    while not message["lines"]:
        message = layer_call(layer.receive, channel)
    assert message["type"] == "pipeline.lines"
    assert [(item["msg"], item["level"]) for item in message["lines"]] == [(mark, "WARN")]

    # Nobody refreshes: both viewers pass their time and the chain ends by itself.
    _until(
        lambda: pipeline_tail.chain_token(env.pk) is None, timeout=15, what="the chain outlived its viewers"
    )
    assert pipeline_tail.viewer_refresh(environment_id=env.pk, viewer="browser-c") is True
    assert pipeline_tail.chain_token(env.pk) not in (None, token)
    pipeline_tail.viewer_leave(environment_id=env.pk, viewer="browser-c")
    _until(lambda: pipeline_tail.chain_token(env.pk) is None, timeout=10, what="the chain did not end")


def test_an_outsider_cannot_open_the_tail(people, env, daphne_server):
    with pytest.raises(InvalidStatus):
        _socket(daphne_server, _cookie(people.outsider))
    assert pipeline_tail.chain_token(env.pk) is None


def test_a_viewer_removed_from_the_project_is_cut_off(people, env, celery_worker_process, daphne_server):
    ws = _socket(daphne_server, _cookie(people.developer))
    assert json.loads(ws.recv(timeout=10))["type"] == "pipeline-started"
    member_remove(actor=people.ops, project=people.project, user=people.developer)
    # The socket re-checks access at every refresh (a third of LOG_PIPELINE_TAIL_VIEWER_SECONDS, 15).
    message = json.loads(ws.recv(timeout=10))
    assert message == {"type": "pipeline-error", "message": "You no longer see this project.", "final": True}
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    assert pipeline_tail.viewers_count(env.pk) == 0
    _until(lambda: pipeline_tail.chain_token(env.pk) is None, timeout=10, what="the chain did not end")
