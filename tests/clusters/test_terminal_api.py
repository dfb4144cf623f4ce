"""Terminal session audit: the list and replay pages, the read-only API, and recording retention."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from clusters.models import TerminalSession
from clusters.services import terminal
from clusters.tasks import prune_terminal_recordings
from projects import services as project_services
from projects.models import Project

pytestmark = pytest.mark.django_db

CAST = '{"version": 2, "width": 80, "height": 24, "timestamp": 1, "env": {}}\n[0.1, "o", "hello\\r\\n"]\n'


@pytest.fixture
def recordings(settings, tmp_path):
    settings.TERMINAL_RECORDINGS_DIR = tmp_path
    return tmp_path


def _session(user, project, recordings, pod="orders-1", **fields) -> TerminalSession:
    session = TerminalSession.objects.create(
        user=user,
        username=user.username,
        project=project,
        environment="test",
        cluster_name="local",
        namespace=f"{project.name}-test",
        pod=pod,
        container="app",
        recording=f"2025/01/01/{pod}.cast",
        ended_at=timezone.now(),
        **fields,
    )
    (recordings / session.recording).parent.mkdir(parents=True, exist_ok=True)
    (recordings / session.recording).write_text(CAST)
    return session


@pytest.fixture
def sessions(people, recordings):
    other = project_services.project_create(
        actor=people.ops, name="payments", owner=people.ops, language="go"
    )
    return {
        "orders": _session(people.developer, people.project, recordings),
        "payments": _session(people.ops, Project.objects.get(pk=other.pk), recordings, pod="payments-1"),
    }


def _ids(client, url: str) -> set[int]:
    response = client.get(url)
    assert response.status_code == 200
    return {row["id"] for row in response.json()["results"]}


def test_api_lists_only_sessions_of_your_projects(client, people, sessions):
    client.force_login(people.ops)
    assert _ids(client, "/api/terminal-sessions/") == {s.pk for s in sessions.values()}
    assert _ids(client, "/api/terminal-sessions/?project=payments") == {sessions["payments"].pk}
    assert _ids(client, "/api/terminal-sessions/?user=dora-dev") == {sessions["orders"].pk}
    client.force_login(people.viewer)
    assert _ids(client, "/api/terminal-sessions/") == {sessions["orders"].pk}
    client.force_login(people.outsider)
    assert _ids(client, "/api/terminal-sessions/") == set()
    assert client.get(f"/api/terminal-sessions/{sessions['orders'].pk}/").status_code == 404
    assert client.get(f"/api/terminal-sessions/{sessions['orders'].pk}/recording").status_code == 404


def test_api_detail_and_recording(client, people, sessions):
    client.force_login(people.developer)
    session = sessions["orders"]
    detail = client.get(f"/api/terminal-sessions/{session.pk}/").json()
    assert (detail["username"], detail["pod"], detail["project"]) == ("dora-dev", "orders-1", "orders")
    assert detail["recording_available"] is True
    response = client.get(f"/api/terminal-sessions/{session.pk}/recording")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-asciicast"
    assert b"".join(response.streaming_content).decode() == CAST
    assert client.get(f"/api/terminal-sessions/{sessions['payments'].pk}/").status_code == 404


def test_api_cannot_change_or_delete_sessions_or_recordings(client, people, sessions, recordings):
    client.force_login(people.ops)
    session = sessions["orders"]
    for url in (f"/api/terminal-sessions/{session.pk}/", f"/api/terminal-sessions/{session.pk}/recording"):
        assert client.delete(url).status_code == 405
        assert client.put(url, {}, content_type="application/json").status_code == 405
        assert client.patch(url, {}, content_type="application/json").status_code == 405
    assert client.post("/api/terminal-sessions/", {}, content_type="application/json").status_code == 405
    assert (recordings / session.recording).read_text() == CAST


def test_pages_list_and_replay(client, people, sessions):
    client.force_login(people.developer)
    page = client.get("/terminal-sessions/").content.decode()
    assert "orders-1" in page and "payments-1" not in page
    assert client.get(f"/terminal-sessions/{sessions['orders'].pk}/").status_code == 200
    assert client.get(f"/terminal-sessions/{sessions['payments'].pk}/").status_code == 404


def test_retention_deletes_old_recordings_and_marks_rows(people, sessions, recordings, settings):
    settings.TERMINAL_RECORDING_RETENTION_DAYS = 180
    old = sessions["orders"]
    TerminalSession.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=181))
    prune_terminal_recordings.apply()
    old.refresh_from_db()
    assert old.recording_deleted_at is not None and old.recording_path is None
    assert not (recordings / old.recording).exists()
    assert (recordings / sessions["payments"].recording).exists()
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert terminal.recordings_prune() == 0  # idempotent


def test_recorder_appends_asciicast_v2(tmp_path):
    path = tmp_path / "a" / "s.cast"
    recorder = terminal.Recorder(path, width=100, height=30, started=1700000000.5, title="t")
    recorder.output("h€".encode()[:2])  # a character split across frames
    recorder.output("h€".encode()[2:] + b"!")
    recorder.input("ls\r")
    recorder.resize(120, 40)
    recorder.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {
        "version": 2,
        "width": 100,
        "height": 30,
        "timestamp": 1700000000,
        "title": "t",
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
    }
    assert [event[1:] for event in lines[1:]] == [["o", "h"], ["o", "€!"], ["i", "ls\r"], ["r", "120x40"]]
    with pytest.raises(FileExistsError):  # never rewritten
        terminal.Recorder(path, width=1, height=1, started=0, title="")
