"""The Apollo stand-in's own extras, beyond Apollo's contract (test_conformance.py): injected faults, the
request log, the state file, thread safety, its stricter checks, its CLI and the `make run` service."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import requests

from sandbox.apollo import ApolloStandin
from sandbox.seed import DEMO_PROJECTS, DEMO_USERS
from sandbox.services import APOLLO_DEMO_ENVS, ApolloService
from tests.fixtures.apollo import ApolloApp

REPO = Path(__file__).resolve().parents[3]


def _ns(app: ApolloApp, env: str = "FAT", namespace: str = "application") -> str:
    return f"{app.url}/openapi/v1/envs/{env}/apps/{app.app_id}/clusters/default/namespaces/{namespace}"


def _auth(app: ApolloApp) -> dict[str, str]:
    return {"Authorization": app.token}


def test_an_injected_500_answers_in_apollos_shape_once(apollo_app: ApolloApp):
    apollo_app.server.inject_fault(
        rf"/apps/{apollo_app.app_id}/clusters/default/namespaces/application$", 500
    )
    answer = requests.get(_ns(apollo_app), headers=_auth(apollo_app), timeout=5)
    assert answer.status_code == 500
    assert answer.json()["exception"] == "java.lang.RuntimeException"
    assert requests.get(_ns(apollo_app), headers=_auth(apollo_app), timeout=5).status_code == 200


def test_an_injected_429_answers_in_spring_boots_shape_with_retry_after(apollo_app: ApolloApp):
    apollo_app.server.inject_fault(r"/envclusters$", 429, retry_after=3)
    path = f"/openapi/v1/apps/{apollo_app.app_id}/envclusters"
    answer = requests.get(f"{apollo_app.url}{path}", headers=_auth(apollo_app), timeout=5)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.json()["error"] == "Too Many Requests" and answer.json()["path"] == path


def test_a_fault_after_the_work_loses_only_the_answer(apollo_app: ApolloApp):
    apollo_app.server.inject_fault(r"/releases$", 502, method="POST", after=True)
    body = {"releaseTitle": "lost answer", "releasedBy": "alice"}
    answer = requests.post(f"{_ns(apollo_app)}/releases", json=body, headers=_auth(apollo_app), timeout=5)
    assert answer.status_code == 502
    latest = requests.get(f"{_ns(apollo_app)}/releases/latest", headers=_auth(apollo_app), timeout=5).json()
    assert latest["name"] == "lost answer"


def test_the_request_log_keeps_the_raw_authorization_and_the_body(apollo_app: ApolloApp):
    client = apollo_app.client()
    client.item_create(ref=apollo_app.ref(), key="logged", value="1", comment="", operator="alice")
    logged = [
        r
        for r in apollo_app.server.requests
        if r.path.endswith(f"{apollo_app.app_id}/clusters/default/namespaces/application/items")
    ]
    assert logged[-1].method == "POST"
    assert logged[-1].authorization == apollo_app.token
    assert logged[-1].content_type == "application/json;charset=UTF-8"
    assert logged[-1].body == {"key": "logged", "value": "1", "comment": "", "dataChangeCreatedBy": "alice"}
    assert apollo_app.server.request_count(rf"{apollo_app.app_id}/.*/items$", "POST") == 1


def test_a_release_title_over_64_characters_is_a_400_saying_so(apollo_app: ApolloApp):
    body = {"releaseTitle": "t" * 65, "releasedBy": "alice"}
    answer = requests.post(f"{_ns(apollo_app)}/releases", json=body, headers=_auth(apollo_app), timeout=5)
    assert answer.status_code == 400
    assert answer.json()["message"] == "releaseTitle too long. length limit:64"
    body = {"releaseTitle": "t", "releaseComment": "c" * 257, "releasedBy": "alice"}
    answer = requests.post(f"{_ns(apollo_app)}/releases", json=body, headers=_auth(apollo_app), timeout=5)
    assert answer.json()["message"] == "releaseComment too long. length limit:256"


def test_encoded_keys_take_both_alphabets_and_refuse_garbage(apollo_app: ApolloApp):
    key = "???/~"  # its standard base64 has a "/" and its URL-safe one a "_"
    standard = base64.b64encode(key.encode()).decode()
    urlsafe = base64.urlsafe_b64encode(key.encode()).decode()
    assert "/" in standard and "_" in urlsafe
    body = {"key": key, "value": "v", "dataChangeLastModifiedBy": "alice", "dataChangeCreatedBy": "alice"}
    answer = requests.put(
        f"{_ns(apollo_app)}/encodedItems/{urlsafe}",
        json=body,
        params={"createIfNotExists": "true"},
        headers=_auth(apollo_app),
        timeout=5,
    )
    assert answer.status_code == 200
    assert apollo_app.client().item_get(ref=apollo_app.ref(), key=key).value == "v"
    answer = requests.get(f"{_ns(apollo_app)}/encodedItems/!!!", headers=_auth(apollo_app), timeout=5)
    assert (answer.status_code, answer.json()["message"]) == (400, "Invalid encoded key")


def test_a_percent_encoded_slash_in_the_path_is_refused_like_tomcat_does(apollo_app: ApolloApp):
    answer = requests.get(f"{_ns(apollo_app)}/items/a%2Fb", headers=_auth(apollo_app), timeout=5)
    assert answer.status_code == 400 and "rejected" in answer.text


def test_an_emergency_release_passes_the_namespace_lock(apollo_app: ApolloApp):
    server, client = apollo_app.server, apollo_app.client()
    server.set_lock_switch(True, env="FAT")
    try:
        client.item_create(ref=apollo_app.ref(), key="k", value="v", comment="", operator="alice")
        body = {"releaseTitle": "urgent", "releasedBy": "alice", "isEmergencyPublish": True}
        answer = requests.post(f"{_ns(apollo_app)}/releases", json=body, headers=_auth(apollo_app), timeout=5)
        assert answer.status_code == 200
    finally:
        server.set_lock_switch(False, env="FAT")


def test_concurrent_edits_and_releases_lose_nothing(apollo_app: ApolloApp):
    client, ref = apollo_app.client(), apollo_app.ref()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                client.item_create(ref=ref, key=f"k{n}.{i}", value=str(i), comment="", operator="alice")
            client.release_create(ref=ref, title=f"r{n}", comment="", operator="bob")
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(client.namespace_get(ref=ref).items) == 40
    history = apollo_app.server.release_history("FAT", apollo_app.app_id, "default", "application")
    ids = [r["id"] for r in history]
    assert len(history) == 8 and ids == list(range(ids[0], ids[0] + 8))  # one id each, none skipped or shared
    # Each release is a whole snapshot: items are only added here, so every release holds its predecessor's.
    for earlier, later in zip(history, history[1:], strict=False):
        assert set(earlier["configurations"]) <= set(later["configurations"])


def test_release_ids_count_per_env():
    standin = ApolloStandin(["alice"], envs=["DEV", "UAT"])
    standin.add_app("ids", envs=["DEV", "UAT"])
    standin.add_consumer("f" * 40, {"ids": "*"})
    standin.start()
    try:
        app = ApolloApp(standin, "ids", "f" * 40)

        def release(env: str) -> int:
            return (
                app.client().release_create(ref=app.ref(env=env), title="r", comment="", operator="alice").id
            )

        # Each env is its own config database in Apollo: DEV's ids tell nothing about UAT's.
        assert [release("DEV"), release("UAT"), release("DEV"), release("UAT"), release("UAT")] == [
            1,
            1,
            2,
            2,
            3,
        ]
    finally:
        standin.stop()


def test_the_state_file_keeps_items_releases_and_the_id_counter(tmp_path):
    state = tmp_path / "apollo.json"
    first = ApolloStandin(["alice"], state_file=state)
    first.add_app("kept", envs=["FAT"])
    first.add_consumer("t" * 40, {"kept": "*"})
    first.start()
    app = ApolloApp(first, "kept", "t" * 40)
    try:
        app.client().item_create(ref=app.ref(), key="k", value="v", comment="", operator="alice")
        released = app.client().release_create(ref=app.ref(), title="r1", comment="", operator="alice")
    finally:
        first.stop()
    second = ApolloStandin(["someone-else"], state_file=state)
    second.start()
    app = ApolloApp(second, "kept", "t" * 40)
    try:
        assert app.client().release_latest(ref=app.ref()) == released
        assert [i.key for i in app.client().namespace_get(ref=app.ref()).items] == ["k"]
        again = app.client().release_create(ref=app.ref(), title="r2", comment="", operator="alice")
        assert again.id == released.id + 1
    finally:
        second.stop()


def test_the_cli_serves_an_app_to_its_token(tmp_path):
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "sandbox.apollo",
            "serve",
            "--token",
            "c" * 40,
            "--user",
            "alice",
            "--app",
            "cli=FAT",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://\S+", line).group(0)
        answer = requests.get(
            f"{url}/openapi/v1/apps/cli/envclusters", headers={"Authorization": "c" * 40}, timeout=5
        )
        assert {e["env"]: e["clusters"] for e in answer.json()}["FAT"] == ["default"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_make_runs_service_seeds_users_apps_and_a_token_that_survive_a_restart(tmp_path):
    first = ApolloService(tmp_path / "apollo")
    settings = first.start()
    try:
        assert settings == {"APOLLO_PORTAL_URL": first.url}
        assert first.token in first.describe() and first.url in first.describe()
        assert re.fullmatch(r"[0-9a-f]{40}", first.token)
        assert set(DEMO_USERS) | {"apollo"} <= first.standin.users
        app = ApolloApp(first.standin, next(iter(DEMO_PROJECTS)), first.token)
        assert set(app.client().env_clusters(app_id=app.app_id)) >= set(APOLLO_DEMO_ENVS.values())
        ref = app.ref(env=APOLLO_DEMO_ENVS["test"])
        app.client().item_create(ref=ref, key="greeting", value="hello", comment="", operator="dev")
        released = app.client().release_create(ref=ref, title="demo", comment="", operator="ops")
    finally:
        first.stop()
    second = ApolloService(tmp_path / "apollo")
    second.start()
    try:
        assert second.token == first.token
        app = ApolloApp(second.standin, app.app_id, second.token)
        assert app.client().release_latest(ref=ref) == released
    finally:
        second.stop()
