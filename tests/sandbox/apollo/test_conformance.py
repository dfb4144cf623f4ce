"""Apollo's portal Open API contract (shared/reference/integrations-2.md section A), row by row, with plain
``requests``: what the portal's client (integrations/apollo) relies on, checked without it.

By default against the stand-in (sandbox/apollo), each test on an app of its own. To run the same tests
against a real Apollo portal (2.x), use a throwaway app and set:

- ``APOLLO_CONFORMANCE_URL`` (``http://portal:8070``) and ``APOLLO_CONFORMANCE_TOKEN``: a consumer token
  granted the app as a whole ("App" authorisation on /open/manage.html), so it may modify and release;
- ``APOLLO_CONFORMANCE_APP_ID``, ``APOLLO_CONFORMANCE_ENV`` (default FAT), ``APOLLO_CONFORMANCE_CLUSTER``
  (default ``default``), ``APOLLO_CONFORMANCE_NAMESPACE`` (default ``application``),
  ``APOLLO_CONFORMANCE_USER`` (an Apollo user, default ``apollo``).

Optional, for the rows that need them (they skip without, in this mode only):
``APOLLO_CONFORMANCE_FRESH_NAMESPACE`` (a namespace of the app never released; one run uses it up),
``APOLLO_CONFORMANCE_NAMESPACE_TOKEN`` (a token granted only "modify" on that namespace),
``APOLLO_CONFORMANCE_LIMITED_TOKEN`` (a token with a rate limit of 1 call a second),
``APOLLO_CONFORMANCE_OTHER_USER`` (a second Apollo user) and ``APOLLO_CONFORMANCE_LOCK_SWITCH=true`` when
the env's ``namespace.lock.switch`` is on.

The tests create items with random keys and delete them, but releases and rollbacks stay in Apollo's
history, and the rollback rows roll the namespace back until one active release is left.
The stand-in's own extras (faults, state file, `make run`) are in test_standin.py.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import requests

from sandbox.apollo import ApolloStandin
from tests.fixtures.apollo import apollo_token

REAL_URL = os.environ.get("APOLLO_CONFORMANCE_URL", "")
BAD_REQUEST = "com.ctrip.framework.apollo.common.exception.BadRequestException"
NOT_FOUND = "com.ctrip.framework.apollo.common.exception.NotFoundException"
ACCESS_DENIED = "org.springframework.security.access.AccessDeniedException"
APOLLO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}")  # yyyy-MM-dd'T'HH:mm:ss.SSSZ
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")  # Java's LocalDateTime, in error bodies


@dataclass
class Target:
    url: str
    token: str
    app_id: str
    env: str
    cluster: str
    namespace: str
    user: str
    other_user: str | None
    fresh_namespace: str | None
    namespace_token: str | None
    limited_token: str | None
    lock_switch: bool
    standin: ApolloStandin | None = None
    keys: list[str] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)

    def ns(self, namespace: str | None = None, *, env: str | None = None, app_id: str | None = None) -> str:
        return (
            f"/openapi/v1/envs/{env or self.env}/apps/{app_id or self.app_id}/clusters/{self.cluster}"
            f"/namespaces/{namespace or self.namespace}"
        )

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Content-Type": "application/json;charset=UTF-8", **kwargs.pop("headers", {})}
        auth = self.token if token is None else token
        if auth:
            headers["Authorization"] = auth
        return self.session.request(method, f"{self.url}{path}", headers=headers, timeout=15, **kwargs)

    def new_key(self) -> str:
        key = f"conformance.{uuid.uuid4().hex[:12]}"
        self.keys.append(key)
        return key

    def create(self, key: str, value: str = "v", comment: str = "c", namespace: str | None = None) -> dict:
        body = {"key": key, "value": value, "comment": comment, "dataChangeCreatedBy": self.user}
        answer = self.call("POST", f"{self.ns(namespace)}/items", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def release(
        self, title: str = "conformance", namespace: str | None = None, user: str | None = None
    ) -> dict:
        body = {
            "releaseTitle": title,
            "releaseComment": "by the conformance suite",
            "releasedBy": user or self.user,
        }
        answer = self.call("POST", f"{self.ns(namespace)}/releases", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def latest(self, namespace: str | None = None) -> requests.Response:
        return self.call("GET", f"{self.ns(namespace)}/releases/latest")

    def rollback(self, release_id: int | str, operator: str | None = None, token: str | None = None):
        params = {"operator": self.user if operator is None else operator}
        return self.call(
            "PUT", f"/openapi/v1/envs/{self.env}/releases/{release_id}/rollback", params=params, token=token
        )


def _need(value, what: str):
    """A real-portal row that needs an optional setting skips without it (the stand-in has them all)."""
    if not value:
        pytest.skip(f"set {what} to run this row against a real Apollo")
    return value


@pytest.fixture
def target(request) -> Iterator[Target]:
    if REAL_URL:
        env = os.environ
        made = Target(
            url=REAL_URL.rstrip("/"),
            token=env["APOLLO_CONFORMANCE_TOKEN"],
            app_id=env["APOLLO_CONFORMANCE_APP_ID"],
            env=env.get("APOLLO_CONFORMANCE_ENV", "FAT"),
            cluster=env.get("APOLLO_CONFORMANCE_CLUSTER", "default"),
            namespace=env.get("APOLLO_CONFORMANCE_NAMESPACE", "application"),
            user=env.get("APOLLO_CONFORMANCE_USER", "apollo"),
            other_user=env.get("APOLLO_CONFORMANCE_OTHER_USER") or None,
            fresh_namespace=env.get("APOLLO_CONFORMANCE_FRESH_NAMESPACE") or None,
            namespace_token=env.get("APOLLO_CONFORMANCE_NAMESPACE_TOKEN") or None,
            limited_token=env.get("APOLLO_CONFORMANCE_LIMITED_TOKEN") or None,
            lock_switch=env.get("APOLLO_CONFORMANCE_LOCK_SWITCH", "").lower() == "true",
        )
    else:
        standin: ApolloStandin = request.getfixturevalue("apollo_server")
        app_id = f"conformance-{uuid.uuid4().hex[:10]}"
        standin.add_app(app_id, envs=["FAT"], namespaces=["application", "fresh"])
        token, namespace_token, limited_token = apollo_token(), apollo_token(), apollo_token()
        standin.add_consumer(token, {app_id: "*"})
        standin.add_consumer(namespace_token, {app_id: {"FAT": {"application": {"modify"}}}})
        standin.add_consumer(limited_token, {app_id: "*"}, rate_limit=1)
        made = Target(
            url=standin.url,
            token=token,
            app_id=app_id,
            env="FAT",
            cluster="default",
            namespace="application",
            user="alice",
            other_user="bob",
            fresh_namespace="fresh",
            namespace_token=namespace_token,
            limited_token=limited_token,
            lock_switch=True,
            standin=standin,
        )
    yield made
    for key in made.keys:  # a real Apollo keeps what a test made otherwise
        made.call("DELETE", f"{made.ns()}/items/{key}", params={"operator": made.user})


@contextmanager
def lock_switch_on(t: Target) -> Iterator[None]:
    if t.standin is None:
        _need(
            t.lock_switch and t.other_user,
            "APOLLO_CONFORMANCE_LOCK_SWITCH=true and APOLLO_CONFORMANCE_OTHER_USER",
        )
        yield
        return
    t.standin.set_lock_switch(True, env=t.env)
    try:
        yield
    finally:
        t.standin.set_lock_switch(False, env=t.env)


def assert_apollo_error(answer: requests.Response, status: int, message: str, exception: str = BAD_REQUEST):
    """Apollo's own error shape (GlobalDefaultExceptionHandler), admin-service errors passed through."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["status"], body["message"], body["exception"]) == (status, message, exception), body
    assert LOCAL_TIME.fullmatch(body["timestamp"]), body


def assert_boot_error(answer: requests.Response, status: int, error: str, path: str):
    """Spring Boot's error shape: what ``response.sendError`` in Apollo's token filter produces."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["status"], body["error"], body["path"]) == (status, error, path), body
    assert "timestamp" in body and "exception" not in body


def assert_item_fields(item: dict, key: str, value: str, created_by: str, modified_by: str) -> None:
    assert (item["key"], item["value"]) == (key, value)
    assert (item["dataChangeCreatedBy"], item["dataChangeLastModifiedBy"]) == (created_by, modified_by)
    assert APOLLO_TIME.fullmatch(item["dataChangeCreatedTime"]), item
    assert APOLLO_TIME.fullmatch(item["dataChangeLastModifiedTime"]), item


# --- the token ------------------------------------------------------------------------------------


def test_no_token_or_an_unknown_one_is_401_in_spring_boots_shape(target):
    path = f"/openapi/v1/apps/{target.app_id}/envclusters"
    assert_boot_error(target.call("GET", path, token=""), 401, "Unauthorized", path)
    assert_boot_error(target.call("GET", path, token="0" * 40), 401, "Unauthorized", path)


def test_the_token_goes_raw_in_authorization_not_as_a_bearer(target):
    path = f"/openapi/v1/apps/{target.app_id}/envclusters"
    assert_boot_error(target.call("GET", path, token=f"Bearer {target.token}"), 401, "Unauthorized", path)
    assert target.call("GET", path).status_code == 200


def test_a_write_without_the_grant_is_403_in_apollos_shape(target):
    token = _need(target.namespace_token, "APOLLO_CONFORMANCE_NAMESPACE_TOKEN")
    body = {"releaseTitle": "t", "releasedBy": target.user}
    answer = target.call("POST", f"{target.ns()}/releases", json=body, token=token)
    assert_apollo_error(answer, 403, "Access is denied", ACCESS_DENIED)
    # The grant is checked before anything else: no release was made, the bad user was never looked at.
    body["releasedBy"] = "no-such-user-anywhere"
    answer = target.call("POST", f"{target.ns()}/releases", json=body, token=token)
    assert_apollo_error(answer, 403, "Access is denied", ACCESS_DENIED)


def test_a_missing_namespace_is_403_for_a_namespace_grant_and_404_for_an_app_grant(target):
    token = _need(target.namespace_token, "APOLLO_CONFORMANCE_NAMESPACE_TOKEN")
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    body = {"key": "k", "value": "v", "dataChangeCreatedBy": target.user}
    answer = target.call("POST", f"{target.ns(missing)}/items", json=body, token=token)
    assert_apollo_error(answer, 403, "Access is denied", ACCESS_DENIED)
    answer = target.call("POST", f"{target.ns(missing)}/items", json=body)
    assert_apollo_error(
        answer,
        404,
        f"namespace not found for appId:{target.app_id} clusterName:{target.cluster} namespaceName:{missing}",
        NOT_FOUND,
    )


def test_a_rate_limited_token_gets_429_in_spring_boots_shape(target):
    token = _need(target.limited_token, "APOLLO_CONFORMANCE_LIMITED_TOKEN")
    path = f"/openapi/v1/apps/{target.app_id}/envclusters"
    assert target.call("GET", path, token=token).status_code == 200
    time.sleep(1.2)  # Apollo lets a token's first second through (the limiter's warm-up)
    answers = [target.call("GET", path, token=token) for _ in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert_boot_error(limited[0], 429, "Too Many Requests", path)


# --- reads ----------------------------------------------------------------------------------------


def test_envclusters_lists_every_env_of_the_portal_with_the_apps_clusters(target):
    answer = target.call("GET", f"/openapi/v1/apps/{target.app_id}/envclusters")
    assert answer.status_code == 200
    envs = {e["env"]: e["clusters"] for e in answer.json()}
    assert target.cluster in envs[target.env]
    unknown = target.call("GET", f"/openapi/v1/apps/missing-{uuid.uuid4().hex[:8]}/envclusters")
    assert unknown.status_code == 200  # an app Apollo does not know has no clusters anywhere
    assert {e["env"] for e in unknown.json()} == set(envs)
    assert all(e["clusters"] == [] for e in unknown.json())


def test_an_unknown_app_is_400_app_not_found(target):
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    assert_apollo_error(target.call("GET", f"/openapi/v1/apps/{missing}"), 400, f"App not found: {missing}")
    assert target.call("GET", f"/openapi/v1/apps/{target.app_id}").json()["appId"] == target.app_id


def test_the_namespace_has_its_items_in_order_with_audit_fields(target):
    first, second = target.new_key(), target.new_key()
    target.create(first, "1", "the first")
    target.create(second, "2", "")
    answer = target.call("GET", target.ns())
    assert answer.status_code == 200
    namespace = answer.json()
    assert (namespace["appId"], namespace["clusterName"], namespace["namespaceName"]) == (
        target.app_id,
        target.cluster,
        target.namespace,
    )
    assert namespace["format"] == "properties" and namespace["isPublic"] is False
    keys = [i["key"] for i in namespace["items"]]
    assert keys.index(first) < keys.index(second)
    item = next(i for i in namespace["items"] if i["key"] == first)
    assert_item_fields(item, first, "1", target.user, target.user)
    assert item["comment"] == "the first"


def test_a_missing_namespace_or_app_is_404_namespace_not_found(target):
    for app_id, namespace in (
        (target.app_id, f"missing-{uuid.uuid4().hex[:8]}"),
        (f"missing-{uuid.uuid4().hex[:8]}", target.namespace),
    ):
        answer = target.call("GET", target.ns(namespace, app_id=app_id))
        assert_apollo_error(
            answer,
            404,
            f"namespace not found for appId:{app_id} clusterName:{target.cluster} namespaceName:{namespace}",
            NOT_FOUND,
        )


def test_an_env_the_portal_does_not_serve_is_a_500_illegal_argument(target):
    answer = target.call("GET", target.ns(env="NOSUCHENV"))
    assert_apollo_error(answer, 500, "NOSUCHENV not exist", "java.lang.IllegalArgumentException")


def test_items_come_in_pages(target):
    key = target.new_key()
    target.create(key)
    answer = target.call("GET", f"{target.ns()}/items", params={"page": 0, "size": 50})
    assert answer.status_code == 200
    page = answer.json()
    assert (page["page"], page["size"]) == (0, 50) and page["total"] >= 1
    assert key in [i["key"] for i in page["content"]]
    assert target.call("GET", f"{target.ns()}/items", params={"page": -1}).status_code == 400


def test_the_lock_is_open_while_the_switch_is_off(target):
    if target.standin is None and target.lock_switch:
        pytest.skip("the env's namespace.lock.switch is on")
    answer = target.call("GET", f"{target.ns()}/lock")
    assert answer.status_code == 200
    assert answer.json() == {"namespaceName": target.namespace, "isLocked": False}


# --- items ----------------------------------------------------------------------------------------


def test_create_answers_the_item_and_a_second_create_is_400_exists(target):
    key = target.new_key()
    item = target.create(key, "3000", "timeout")
    assert_item_fields(item, key, "3000", target.user, target.user)
    assert item["comment"] == "timeout"
    body = {"key": key, "value": "1", "dataChangeCreatedBy": target.user}
    answer = target.call("POST", f"{target.ns()}/items", json=body)
    assert_apollo_error(answer, 400, f"item already exists for itemKey:{key}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"key": "k", "value": "v"}, "key and dataChangeCreatedBy should not be null or empty"),
        (
            {"value": "v", "dataChangeCreatedBy": "USER"},
            "key and dataChangeCreatedBy should not be null or empty",
        ),
        ({"key": "k", "dataChangeCreatedBy": "USER"}, "value should not be null"),
        (
            {"key": "k", "value": "v", "dataChangeCreatedBy": "no-such-user-anywhere"},
            "user not exists for userName:no-such-user-anywhere",
        ),
        (
            {"key": "k", "value": "v", "comment": "c" * 257, "dataChangeCreatedBy": "USER"},
            "Comment length should not exceed 256 characters",
        ),
        ({"key": "k" * 129, "value": "v", "dataChangeCreatedBy": "USER"}, "key too long. length limit:128"),
        (
            {"key": "k", "value": "v" * 20001, "dataChangeCreatedBy": "USER"},
            "value too long. length limit:20000",
        ),
    ],
    ids=["no-creator", "no-key", "no-value", "unknown-user", "comment-257", "key-129", "value-20001"],
)
def test_create_refuses_bad_input_with_400(target, body, message):
    body = {k: target.user if v == "USER" else v for k, v in body.items()}
    if body.get("key") == "k":
        body["key"] = target.new_key()
    answer = target.call("POST", f"{target.ns()}/items", json=body)
    assert_apollo_error(answer, 400, message)
    assert target.call("GET", f"{target.ns()}/items/{body.get('key', 'k')}").status_code == 404


def test_get_answers_the_item_and_a_missing_one_is_404(target):
    key = target.new_key()
    target.create(key, "v1")
    answer = target.call("GET", f"{target.ns()}/items/{key}")
    assert answer.status_code == 200
    assert_item_fields(answer.json(), key, "v1", target.user, target.user)
    missing = f"missing.{uuid.uuid4().hex[:8]}"
    assert_apollo_error(
        target.call("GET", f"{target.ns()}/items/{missing}"),
        404,
        f"item not found for appId:{target.app_id} clusterName:{target.cluster} "
        f"namespaceName:{target.namespace} itemKey:{missing}",
        NOT_FOUND,
    )


def test_update_answers_200_with_no_body_and_records_the_editor(target):
    editor = target.other_user or target.user
    key = target.new_key()
    target.create(key, "old")
    body = {"key": key, "value": "new", "comment": "changed", "dataChangeLastModifiedBy": editor}
    answer = target.call("PUT", f"{target.ns()}/items/{key}", json=body)
    assert answer.status_code == 200 and answer.content == b""
    item = target.call("GET", f"{target.ns()}/items/{key}").json()
    assert_item_fields(item, key, "new", target.user, editor)
    assert item["comment"] == "changed"


def test_update_of_a_missing_item_is_404_unless_create_if_not_exists(target):
    key = target.new_key()
    body = {"key": key, "value": "v", "dataChangeLastModifiedBy": target.user}
    assert_apollo_error(
        target.call("PUT", f"{target.ns()}/items/{key}", json=body),
        404,
        f"item not found for appId:{target.app_id} clusterName:{target.cluster} "
        f"namespaceName:{target.namespace} itemKey:{key}",
        NOT_FOUND,
    )
    params = {"createIfNotExists": "true"}
    assert_apollo_error(
        target.call("PUT", f"{target.ns()}/items/{key}", json=body, params=params),
        400,
        "dataChangeCreatedBy is required when createIfNotExists is true",
    )
    body["dataChangeCreatedBy"] = target.user
    answer = target.call("PUT", f"{target.ns()}/items/{key}", json=body, params=params)
    assert answer.status_code == 200 and answer.content == b""
    assert target.call("GET", f"{target.ns()}/items/{key}").json()["value"] == "v"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"value": "v", "dataChangeLastModifiedBy": "USER"},
            "key and dataChangeLastModifiedBy can not be empty",
        ),
        ({"key": "KEY", "value": "v"}, "key and dataChangeLastModifiedBy can not be empty"),
        (
            {"key": "other", "value": "v", "dataChangeLastModifiedBy": "USER"},
            "Key in path and payload is not consistent",
        ),
        ({"key": "KEY", "dataChangeLastModifiedBy": "USER"}, "value should not be null"),
        (
            {"key": "KEY", "value": "v", "dataChangeLastModifiedBy": "no-such-user-anywhere"},
            "user not exists for userName:no-such-user-anywhere",
        ),
        (
            {"key": "KEY", "value": "v" * 20001, "dataChangeLastModifiedBy": "USER"},
            "value too long. length limit:20000",
        ),
    ],
    ids=["no-key", "no-editor", "other-key", "no-value", "unknown-user", "value-20001"],
)
def test_update_refuses_bad_input_with_400(target, body, message):
    key = target.new_key()
    target.create(key, "kept")
    body = {
        k: {"USER": target.user, "KEY": key}.get(v, v) if isinstance(v, str) else v for k, v in body.items()
    }
    assert_apollo_error(target.call("PUT", f"{target.ns()}/items/{key}", json=body), 400, message)
    assert target.call("GET", f"{target.ns()}/items/{key}").json()["value"] == "kept"


def test_delete_answers_200_and_a_missing_item_is_404(target):
    key = target.new_key()
    target.create(key)
    path = f"{target.ns()}/items/{key}"
    assert_apollo_error(
        target.call("DELETE", path, params={"operator": "no-such-user-anywhere"}),
        400,
        "user not exists for userName:no-such-user-anywhere",
    )
    answer = target.call("DELETE", path, params={"operator": target.user})
    assert answer.status_code == 200 and answer.content == b""
    assert target.call("GET", path).status_code == 404
    assert_apollo_error(
        target.call("DELETE", path, params={"operator": target.user}),
        404,
        f"item not found for appId:{target.app_id} clusterName:{target.cluster} "
        f"namespaceName:{target.namespace} itemKey:{key}",
        NOT_FOUND,
    )


def test_a_key_with_a_slash_goes_base64_encoded_under_encoded_items(target):
    key = f"conformance/{uuid.uuid4().hex[:6]}"
    encoded = base64.b64encode(key.encode()).decode()
    assert "/" not in encoded  # a slash in the standard alphabet would split the path again
    path = f"{target.ns()}/encodedItems/{encoded}"
    body = {
        "key": key,
        "value": "v",
        "dataChangeLastModifiedBy": target.user,
        "dataChangeCreatedBy": target.user,
    }
    assert target.call("PUT", path, json=body, params={"createIfNotExists": "true"}).status_code == 200
    try:
        assert target.call("GET", path).json()["value"] == "v"
        assert key in [i["key"] for i in target.call("GET", target.ns()).json()["items"]]
    finally:
        answer = target.call("DELETE", path, params={"operator": target.user})
    assert answer.status_code == 200
    assert target.call("GET", path).status_code == 404


def test_a_wrong_method_is_400_not_405(target):
    key = target.new_key()
    target.create(key)
    assert_apollo_error(
        target.call("POST", f"{target.ns()}/items/{key}", json={}),
        400,
        "Request method 'POST' not supported",
        "org.springframework.web.HttpRequestMethodNotSupportedException",
    )


# --- releases -------------------------------------------------------------------------------------


def test_a_release_answers_its_id_title_and_a_snapshot_of_the_items(target):
    key = target.new_key()
    target.create(key, "released")
    release = target.release("the title")
    assert isinstance(release["id"], int)
    assert (release["appId"], release["clusterName"], release["namespaceName"]) == (
        target.app_id,
        target.cluster,
        target.namespace,
    )
    assert (release["name"], release["comment"]) == ("the title", "by the conformance suite")
    assert release["configurations"][key] == "released"
    assert release["dataChangeCreatedBy"] == target.user
    assert APOLLO_TIME.fullmatch(release["dataChangeCreatedTime"])
    # Edits after it are not released: the latest release keeps the snapshot.
    body = {"key": key, "value": "edited", "dataChangeLastModifiedBy": target.user}
    assert target.call("PUT", f"{target.ns()}/items/{key}", json=body).status_code == 200
    latest = target.latest()
    assert latest.status_code == 200
    assert latest.json()["id"] == release["id"] and latest.json()["configurations"][key] == "released"
    second = target.release("the next")
    assert second["id"] > release["id"] and second["configurations"][key] == "edited"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"releasedBy": "USER"}, "Params(releaseTitle and releasedBy) can not be empty"),
        ({"releaseTitle": "t"}, "Params(releaseTitle and releasedBy) can not be empty"),
        (
            {"releaseTitle": "t", "releasedBy": "no-such-user-anywhere"},
            "user not exists for userName:no-such-user-anywhere",
        ),
    ],
    ids=["no-title", "no-releaser", "unknown-user"],
)
def test_a_release_refuses_bad_input_with_400(target, body, message):
    body = {k: target.user if v == "USER" else v for k, v in body.items()}
    before = target.latest().content
    assert_apollo_error(target.call("POST", f"{target.ns()}/releases", json=body), 400, message)
    assert target.latest().content == before


def test_a_release_title_over_64_characters_is_refused(target):
    before = target.latest().content
    body = {"releaseTitle": "t" * 65, "releasedBy": target.user}
    answer = target.call("POST", f"{target.ns()}/releases", json=body)
    # Apollo's database refuses it (a 500); the stand-in says why with a 400.
    assert answer.status_code in (400, 500), answer.text
    assert target.latest().content == before


def test_a_release_of_a_missing_namespace_is_404(target):
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    body = {"releaseTitle": "t", "releasedBy": target.user}
    assert_apollo_error(
        target.call("POST", f"{target.ns(missing)}/releases", json=body),
        404,
        f"namespace not found for appId:{target.app_id} clusterName:{target.cluster} namespaceName:{missing}",
        NOT_FOUND,
    )


def test_latest_of_a_never_released_namespace_is_200_with_an_empty_body(target):
    fresh = _need(target.fresh_namespace, "APOLLO_CONFORMANCE_FRESH_NAMESPACE")
    answer = target.latest(fresh)
    assert answer.status_code == 200 and answer.content == b""
    # Apollo does not even look for the namespace here: a missing one answers the same.
    answer = target.latest(f"missing-{uuid.uuid4().hex[:8]}")
    assert answer.status_code == 200 and answer.content == b""


def test_rollback_abandons_the_release_and_the_previous_one_is_latest_again(target):
    key = target.new_key()
    target.create(key, "one")
    first = target.release("first")
    body = {"key": key, "value": "two", "dataChangeLastModifiedBy": target.user}
    target.call("PUT", f"{target.ns()}/items/{key}", json=body)
    second = target.release("second")
    answer = target.rollback(second["id"])
    assert answer.status_code == 200 and answer.content == b""
    latest = target.latest().json()
    assert latest["id"] == first["id"] and latest["configurations"][key] == "one"
    assert_apollo_error(target.rollback(second["id"]), 400, "release is not active")


def test_rollback_stops_at_the_last_active_release(target):
    target.release("first")
    target.release("second")
    # Roll back the latest until one active release is left (a real namespace may have older ones).
    for _ in range(100):
        latest = target.latest().json()
        answer = target.rollback(latest["id"])
        if answer.status_code != 200:
            break
    assert_apollo_error(
        answer,
        400,
        f"Can't rollback namespace(appId={target.app_id}, clusterName={target.cluster}, "
        f"namespaceName={target.namespace}) because there is only one active release",
    )
    assert target.latest().json()["id"] == latest["id"]  # still served


def test_rollback_of_an_older_active_release_abandons_it_and_keeps_the_latest(target):
    first = target.release("first")
    second = target.release("second")
    assert target.rollback(first["id"]).status_code == 200  # Apollo does not insist on the latest
    assert target.latest().json()["id"] == second["id"]
    assert_apollo_error(target.rollback(first["id"]), 400, "release is not active")


def test_rollback_refuses_an_unknown_release_user_or_grant(target):
    assert_apollo_error(target.rollback(9_000_000_000_000), 400, "release not found")
    release = target.release("r")
    assert_apollo_error(target.rollback(release["id"], operator=""), 400, "Param operator can not be empty")
    assert_apollo_error(
        target.rollback(release["id"], operator="no-such-user-anywhere"),
        400,
        "user not exists for userName:no-such-user-anywhere",
    )
    if target.namespace_token:
        assert_apollo_error(
            target.rollback(release["id"], token=target.namespace_token),
            403,
            "Forbidden operation. you don't have release permission",
            ACCESS_DENIED,
        )


# --- namespace.lock.switch ------------------------------------------------------------------------


def test_with_the_lock_switch_the_editor_holds_the_namespace_until_someone_else_releases(target):
    with lock_switch_on(target):
        key = target.new_key()
        target.create(key, "locked")
        lock = target.call("GET", f"{target.ns()}/lock").json()
        assert lock == {"namespaceName": target.namespace, "isLocked": True, "lockedBy": target.user}
        body = {"key": key, "value": "x", "dataChangeLastModifiedBy": target.other_user}
        assert_apollo_error(
            target.call("PUT", f"{target.ns()}/items/{key}", json=body),
            400,
            f"namespace:{target.namespace} is modified by {target.user}",
        )
        body = {"releaseTitle": "mine", "releasedBy": target.user}
        assert_apollo_error(
            target.call("POST", f"{target.ns()}/releases", json=body),
            400,
            "Config can not be published by yourself.",
        )
        release = target.release("reviewed", user=target.other_user)
        assert release["configurations"][key] == "locked"
        assert target.call("GET", f"{target.ns()}/lock").json()["isLocked"] is False
        # Clean up within the rules: the other user's delete locks the namespace, this release frees it.
        path = f"{target.ns()}/items/{key}"
        assert target.call("DELETE", path, params={"operator": target.other_user}).status_code == 200
        target.keys.remove(key)
        target.release("cleanup")
        assert target.call("GET", f"{target.ns()}/lock").json()["isLocked"] is False
