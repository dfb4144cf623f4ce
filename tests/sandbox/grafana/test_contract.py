"""Grafana's HTTP API contract, checked through the portal's own client (integrations.grafana).

By default against the stand-in (sandbox/grafana). Set GRAFANA_CONFORMANCE_URL and
GRAFANA_CONFORMANCE_TOKEN (an Editor service-account token; GRAFANA_CONFORMANCE_VIEWER_TOKEN optionally, a
Viewer one) to run the same tests against a real Grafana: every object they create has a random uid and
is deleted afterwards. The stand-in's own extras (panel validation, the outage switch) are in
test_standin.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests

from integrations.errors import Conflict, Invalid, NotFound, ServerError, Unauthorized, Unreachable
from integrations.grafana.client import GrafanaClient
from tests.fixtures.standins import GRAFANA_TOKEN, GRAFANA_VIEWER_TOKEN

REAL_URL = os.environ.get("GRAFANA_CONFORMANCE_URL", "")


@pytest.fixture
def target(request) -> Iterator[tuple[str, str, str]]:
    """(base URL, Editor token, Viewer token or "")."""
    if REAL_URL:
        yield (
            REAL_URL,
            os.environ["GRAFANA_CONFORMANCE_TOKEN"],
            os.environ.get("GRAFANA_CONFORMANCE_VIEWER_TOKEN", ""),
        )
        return
    standin = request.getfixturevalue("grafana_standin")
    yield standin.url, GRAFANA_TOKEN, GRAFANA_VIEWER_TOKEN


@pytest.fixture
def grafana(target) -> Iterator[GrafanaClient]:
    client = GrafanaClient(target[0], target[1])
    made: list[tuple[str, str]] = []
    client.made = made  # type: ignore[attr-defined]
    yield client
    for kind, uid in reversed(made):  # a real Grafana keeps what a test made otherwise
        if kind == "folder":
            client.folder_delete(uid)
        elif kind == "datasource":
            requests.delete(
                f"{target[0]}/api/datasources/uid/{uid}",
                headers={"Authorization": f"Bearer {target[1]}"},
                timeout=10,
            )


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def datasource(grafana) -> str:
    uid = _uid("ds")
    grafana.made.append(("datasource", uid))
    grafana.datasource_ensure(uid, name=f"conformance {uid}", type="prometheus", url="http://127.0.0.1:9")
    return uid


@pytest.fixture
def folder(grafana) -> str:
    uid = _uid("f")
    grafana.made.append(("folder", uid))
    grafana.folder_ensure(uid, f"Conformance {uid}")
    return uid


def _dashboard(uid: str, datasource: str, title: str | None = None, **extra) -> dict:
    source = {"type": "prometheus", "uid": datasource}
    return {
        "uid": uid,
        "title": title if title is not None else f"Conformance {uid}",
        "tags": ["conformance"],
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": "up",
                "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                "datasource": source,
                "targets": [{"refId": "A", "datasource": source, "expr": "up", "legendFormat": "{{job}}"}],
            }
        ],
        **extra,
    }


def _post(target, path: str, body: dict, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token if token is not None else target[1]}"}
    return requests.post(f"{target[0]}{path}", json=body, headers=headers, timeout=10)


# --- auth ---------------------------------------------------------------------------------------------


def test_a_wrong_token_is_refused_with_401(target):
    client = GrafanaClient(target[0], "glsa_not_a_token")
    with pytest.raises(Unauthorized) as raised:
        client.folder_get("anything")
    assert raised.value.status == 401
    assert requests.get(f"{target[0]}/api/search", timeout=10).status_code == 401  # no token at all


def test_a_viewer_token_reads_but_cannot_write(target, folder):
    if not target[2]:
        pytest.skip("no Viewer token given")
    viewer = GrafanaClient(target[0], target[2])
    assert viewer.folder_get(folder)["uid"] == folder
    with pytest.raises(Unauthorized) as raised:
        viewer.folder_ensure(_uid("f"), "Viewer's folder")
    assert raised.value.status == 403


# --- folders ------------------------------------------------------------------------------------------


def test_folders_are_created_once_and_a_duplicate_is_409(target, grafana):
    uid = _uid("f")
    grafana.made.append(("folder", uid))
    created = grafana.folder_ensure(uid, f"Folder {uid}")
    assert created["uid"] == uid and created["title"] == f"Folder {uid}"
    assert created["id"] and created["version"] >= 1 and created["url"].startswith("/dashboards/f/")
    assert grafana.folder_ensure(uid, f"Folder {uid}")["id"] == created["id"]  # ensured, not duplicated
    assert _post(target, "/api/folders", {"uid": uid, "title": "another title"}).status_code == 409
    assert _post(target, "/api/folders", {"uid": _uid("f"), "title": f"Folder {uid}"}).status_code == 409
    assert grafana.folder_get(_uid("missing")) is None


def test_a_title_taken_by_another_folder_is_a_conflict_for_folder_ensure(grafana, folder):
    title = grafana.folder_get(folder)["title"]
    with pytest.raises(Conflict):
        grafana.folder_ensure(_uid("f"), title)


def test_deleting_a_folder_deletes_its_dashboards(grafana, datasource):
    uid = _uid("f")
    grafana.folder_ensure(uid, f"Doomed {uid}")
    dash = _uid("d")
    grafana.dashboard_save(_dashboard(dash, datasource), folder_uid=uid)
    assert grafana.folder_delete(uid) is True
    assert grafana.folder_get(uid) is None
    assert grafana.dashboard_get(dash) is None
    assert grafana.folder_delete(uid) is False


# --- data sources -------------------------------------------------------------------------------------


def test_datasources_by_uid_and_name_and_a_taken_name_is_409(target, grafana, datasource):
    found = grafana.datasource_get(datasource)
    assert found["uid"] == datasource and found["type"] == "prometheus"
    by_name = requests.get(
        f"{target[0]}/api/datasources/name/{found['name']}",
        headers={"Authorization": f"Bearer {target[1]}"},
        timeout=10,
    )
    assert by_name.status_code == 200 and by_name.json()["uid"] == datasource
    again = _post(
        target, "/api/datasources", {"name": found["name"], "type": "prometheus", "url": "http://x"}
    )
    assert again.status_code == 409
    assert grafana.datasource_get(_uid("missing")) is None
    with pytest.raises(Conflict):  # the name is another uid's: ensure cannot make it
        grafana.datasource_ensure(_uid("ds"), name=found["name"], type="prometheus", url="http://x")


# --- dashboards ---------------------------------------------------------------------------------------


def test_create_then_update_counts_versions_and_never_duplicates(grafana, folder, datasource):
    uid = _uid("d")
    first = grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder, message="first")
    assert first["status"] == "success" and first["uid"] == uid and first["version"] == 1
    assert first["url"] == f"/d/{uid}/{first['slug']}" and first["id"]
    second = grafana.dashboard_save(_dashboard(uid, datasource, refresh="30s"), folder_uid=folder)
    assert second["version"] == 2 and second["id"] == first["id"]
    stored = grafana.dashboard_get(uid)
    assert stored["meta"]["version"] == 2 and stored["meta"]["folderUid"] == folder
    assert stored["dashboard"]["refresh"] == "30s"
    assert [d["uid"] for d in grafana.search(folder_uids=[folder])] == [uid]
    assert [d["uid"] for d in grafana.search(tags=["conformance"], folder_uids=[folder])] == [uid]
    assert grafana.search(tags=["no-such-tag"], folder_uids=[folder]) == []


def test_a_stale_version_is_412_version_mismatch_and_overwrite_wins(target, grafana, folder, datasource):
    uid = _uid("d")
    grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder)
    grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder)  # version 2
    stale = _post(
        target,
        "/api/dashboards/db",
        {"dashboard": {**_dashboard(uid, datasource), "version": 1}, "folderUid": folder},
    )
    assert stale.status_code == 412
    assert stale.json()["status"] == "version-mismatch"
    forced = _post(
        target,
        "/api/dashboards/db",
        {"dashboard": {**_dashboard(uid, datasource), "version": 1}, "folderUid": folder, "overwrite": True},
    )
    assert forced.status_code == 200 and forced.json()["version"] == 3


def test_the_client_saves_over_a_concurrent_edit(target, grafana, folder, datasource):
    """Someone saved in between: the client reads the new version and saves again (no 412 surfaces)."""
    uid = _uid("d")
    grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder)
    other = GrafanaClient(target[0], target[1])
    other.dashboard_save(_dashboard(uid, datasource, description="theirs"), folder_uid=folder)
    saved = grafana.dashboard_save(_dashboard(uid, datasource, description="ours"), folder_uid=folder)
    assert saved["version"] == 3
    assert grafana.dashboard_get(uid)["dashboard"]["description"] == "ours"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"title": ""}, "empty-name"),
        ({"title": "   "}, "empty-name"),
    ],
)
def test_an_empty_title_is_400_empty_name(target, folder, datasource, change, status):
    answer = _post(
        target,
        "/api/dashboards/db",
        {"dashboard": {**_dashboard(_uid("d"), datasource), **change}, "folderUid": folder},
    )
    assert answer.status_code == 400
    assert answer.json()["status"] == status


@pytest.mark.parametrize("uid", ["x" * 41, "has space", "slash/uid", "dot.uid"])
def test_a_bad_or_long_uid_is_400(grafana, folder, datasource, uid):
    with pytest.raises(Invalid) as raised:
        grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder)
    assert raised.value.status == 400


def test_an_unknown_folder_is_refused(grafana, datasource):
    with pytest.raises((Invalid, NotFound)):
        grafana.dashboard_save(_dashboard(_uid("d"), datasource), folder_uid=_uid("no-folder"))


def test_get_and_delete_of_a_missing_dashboard_are_404(target, grafana):
    uid = _uid("missing")
    assert grafana.dashboard_get(uid) is None
    assert grafana.dashboard_delete(uid) is False
    answer = requests.get(
        f"{target[0]}/api/dashboards/uid/{uid}", headers={"Authorization": f"Bearer {target[1]}"}, timeout=10
    )
    assert answer.status_code == 404


def test_delete_removes_the_dashboard(grafana, folder, datasource):
    uid = _uid("d")
    grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder)
    assert grafana.dashboard_delete(uid) is True
    assert grafana.dashboard_get(uid) is None


# --- annotations --------------------------------------------------------------------------------------


def test_annotations_are_added_to_a_dashboard_and_found_by_its_uid(grafana, folder, datasource):
    uid = _uid("d")
    grafana.dashboard_save(_dashboard(uid, datasource), folder_uid=folder)
    at = 1_700_000_000_000
    annotation_id = grafana.annotation_create(uid, text="Release 1.2 deployed", tags=["release"], time_ms=at)
    assert annotation_id > 0
    found = grafana.annotations(uid)
    assert [(a["id"], a["text"], a["time"], a["tags"]) for a in found] == [
        (annotation_id, "Release 1.2 deployed", at, ["release"])
    ]
    assert found[0]["dashboardUID"] == uid


# --- errors the client types --------------------------------------------------------------------------


def test_an_unreachable_grafana_is_a_transient_error():
    with socket_closed_port() as url:
        with pytest.raises(Unreachable) as raised:
            GrafanaClient(url, "t").folder_get("x")
    assert raised.value.permanent is False


def test_a_500_is_a_transient_server_error(grafana_standin):
    grafana_standin.set_outage(True)
    with pytest.raises(ServerError) as raised:
        GrafanaClient(grafana_standin.url, GRAFANA_TOKEN).folder_get("x")
    assert raised.value.permanent is False and raised.value.status == 500
    grafana_standin.set_outage(False)
    assert GrafanaClient(grafana_standin.url, GRAFANA_TOKEN).folder_get("x") is None


class socket_closed_port:  # noqa: N801 - used as a context manager
    def __enter__(self) -> str:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        return None
