"""Live events end to end: a real Celery worker publishes, real Daphne delivers over a real WebSocket."""

import time

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from observability import events
from observability.models import LiveEvent
from tests.livews import LiveClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def _session(user) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


def _wait_for_events(stream: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while LiveEvent.objects.filter(stream=stream).count() < count:
        assert time.monotonic() < deadline, f"worker did not publish {count} events on {stream}"
        time.sleep(0.1)


def test_worker_event_reaches_the_browser_and_reconnect_replays(people, celery_worker_process, daphne_server):
    client, cookie = _session(people.developer)
    stream = events.user_stream(people.developer.pk)

    live = LiveClient(daphne_server, cookie)
    assert live.subscribe(stream) == []
    assert client.post("/api/worker-ping/").status_code == 202
    first = live.next_event("worker-pong")
    assert first["seq"] == 1
    assert first["stream"] == stream
    assert first["payload"]["latency_ms"] >= 0
    live.close()

    # While the page is away, the worker publishes two more events.
    client.post("/api/worker-ping/")
    client.post("/api/worker-ping/")
    _wait_for_events(stream, 3)

    again = LiveClient(daphne_server, cookie)
    replayed = again.subscribe(stream, last_seq=first["seq"])
    assert [m["seq"] for m in replayed] == [2, 3]
    assert {m["name"] for m in replayed} == {"worker-pong"}
    # And live delivery continues after the replay, without duplicates.
    client.post("/api/worker-ping/")
    assert again.next_event("worker-pong")["seq"] == 4
    again.close()


def test_someone_elses_stream_is_not_found(people, daphne_server):
    _, cookie = _session(people.developer)
    live = LiveClient(daphne_server, cookie)
    with pytest.raises(LookupError, match="not found"):
        live.subscribe(events.user_stream(people.tester.pk))
    with pytest.raises(LookupError, match="not found"):
        live.subscribe(events.project_stream(people.project.pk + 1000))
    # A member may follow the project's stream; an outsider may not.
    assert live.subscribe(events.project_stream(people.project.pk)) == []
    live.close()
    _, outsider_cookie = _session(people.outsider)
    outsider = LiveClient(daphne_server, outsider_cookie)
    with pytest.raises(LookupError, match="not found"):
        outsider.subscribe(events.project_stream(people.project.pk))
    outsider.close()


def test_websocket_needs_a_session(daphne_server):
    live = LiveClient(daphne_server, session_cookie=None)
    with pytest.raises(ConnectionClosed) as closed:
        live.recv(timeout=10)
    assert closed.value.rcvd.code == 4401


def test_websocket_checks_the_origin(people, daphne_server):
    _, cookie = _session(people.developer)
    with pytest.raises(InvalidStatus) as refused:
        LiveClient(daphne_server, cookie, origin="http://evil.example")
    assert refused.value.response.status_code == 403


def test_websocket_origin_must_match_scheme_and_port(people, daphne_server):
    _, cookie = _session(people.developer)
    port = int(daphne_server.rsplit(":", 1)[1])
    for foreign in (f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}", "http://127.0.0.1"):
        with pytest.raises(InvalidStatus) as refused:
            LiveClient(daphne_server, cookie, origin=foreign)
        assert refused.value.response.status_code == 403, foreign
    # The page's own origin still connects.
    live = LiveClient(daphne_server, cookie, origin=f"http://127.0.0.1:{port}")
    live.subscribe(events.user_stream(people.developer.pk))
    live.close()


def test_malformed_messages_get_an_error_not_a_crash(people, daphne_server):
    _, cookie = _session(people.developer)
    live = LiveClient(daphne_server, cookie)
    live.send({"type": "subscribe", "stream": 42, "last_seq": "x"})
    assert live.recv()["type"] == "error"
    live.send({"type": "dance"})
    assert live.recv()["type"] == "error"
    live.ws.send("not json")
    assert live.recv()["type"] == "error"
    # The connection is still usable afterwards.
    assert live.subscribe(events.user_stream(people.developer.pk)) == []
    live.close()


def _publish(project, name: str) -> None:
    events.publish(stream=events.project_stream(project.pk), type=name, payload={"n": name})


def _nothing_more(live: LiveClient, seconds: float = 2) -> None:
    with pytest.raises(TimeoutError):
        message = live.recv(timeout=seconds)
        pytest.fail(f"expected nothing more, got {message}")


def test_removed_member_gets_no_further_project_events(people, daphne_server):
    from projects import services as project_services

    _, cookie = _session(people.developer)
    stream = events.project_stream(people.project.pk)
    live = LiveClient(daphne_server, cookie)
    assert live.subscribe(stream) == []
    _publish(people.project, "before-removal")
    assert live.next_event("before-removal")["stream"] == stream

    project_services.member_remove(actor=people.ops, project=people.project, user=people.developer)
    _publish(people.project, "after-removal")
    told = live.recv()
    assert told == {"type": "error", "stream": stream, "error": "access revoked"}
    _publish(people.project, "later")
    _nothing_more(live)
    # Subscribing again is refused like any stream the user may not see.
    with pytest.raises(LookupError, match="not found"):
        live.subscribe(stream)
    live.close()


def test_logged_out_socket_is_closed_and_gets_no_further_events(people, daphne_server):
    client, cookie = _session(people.developer)
    live = LiveClient(daphne_server, cookie)
    assert live.subscribe(events.project_stream(people.project.pk)) == []
    assert client.post("/logout/").status_code == 302
    _publish(people.project, "after-logout")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = live.recv(timeout=10)
            assert message["type"] != "event", f"an event reached a signed-out socket: {message}"
    assert closed.value.rcvd.code == 4401


def test_access_is_rechecked_on_delivery_without_a_signal(people, daphne_server):
    """A change that sends no signal (a raw delete) still takes effect within the re-check interval."""
    from projects.models import ProjectMember

    _, cookie = _session(people.developer)
    stream = events.project_stream(people.project.pk)
    live = LiveClient(daphne_server, cookie)
    assert live.subscribe(stream) == []
    ProjectMember.objects.filter(user=people.developer)._raw_delete(ProjectMember.objects.db)
    time.sleep(5.5)  # LIVE_EVENTS_ACCESS_RECHECK_SECONDS in the server (default 5)
    _publish(people.project, "after-raw-delete")
    assert live.recv() == {"type": "error", "stream": stream, "error": "access revoked"}
    _nothing_more(live, 1)
    live.close()
