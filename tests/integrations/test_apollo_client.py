"""The Apollo client (integrations/apollo) against the stand-in: every method, every typed error, the wire
format it relies on (raw token, JSON content type, encoded keys) and timeouts against a silent socket."""

from __future__ import annotations

import base64
import socket
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from integrations.apollo import ApolloClient, NamespaceRef, item_path, parse_apollo_time
from integrations.errors import (
    IntegrationError,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
)
from tests.fixtures.apollo import ApolloApp, apollo_token


@pytest.fixture
def client(apollo_app: ApolloApp) -> ApolloClient:
    return apollo_app.client()


def _error(call) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        call()
    return caught.value


# --- every method ---------------------------------------------------------------------------------


def test_env_clusters_maps_each_env_to_the_apps_clusters(apollo_app: ApolloApp, client: ApolloClient):
    clusters = client.env_clusters(app_id=apollo_app.app_id)
    assert clusters["FAT"] == ["default"] and clusters["PRO"] == ["default"]
    assert all(clusters[env] == [] for env in clusters if env not in ("FAT", "PRO"))


def test_items_are_created_read_updated_and_deleted_with_the_operator(apollo_app: ApolloApp, client):
    ref = apollo_app.ref()
    created = client.item_create(ref=ref, key="timeout", value="3000", comment="ms", operator="alice")
    assert (created.key, created.value, created.comment, created.created_by) == (
        "timeout",
        "3000",
        "ms",
        "alice",
    )
    assert created.created_at is not None and abs(created.created_at - datetime.now(UTC)) < timedelta(
        minutes=1
    )

    client.item_update(ref=ref, key="timeout", value="5000", comment="raised", operator="bob")
    item = client.item_get(ref=ref, key="timeout")
    assert (item.value, item.comment, item.created_by, item.modified_by) == ("5000", "raised", "alice", "bob")
    assert item.modified_at >= item.created_at

    client.item_update(ref=ref, key="retries", value="3", comment="", operator="bob", create_if_missing=True)
    namespace = client.namespace_get(ref=ref)
    assert (namespace.ref, namespace.format) == (ref, "properties")
    assert [(i.key, i.value) for i in namespace.items] == [("timeout", "5000"), ("retries", "3")]

    client.item_delete(ref=ref, key="timeout", operator="alice")
    assert [i.key for i in client.namespace_get(ref=ref).items] == ["retries"]
    assert isinstance(_error(lambda: client.item_get(ref=ref, key="timeout")), NotFound)


def test_a_yaml_namespace_has_its_format(apollo_app: ApolloApp, client):
    apollo_app.server.add_app(apollo_app.app_id, envs=["FAT"], namespaces=["gateway.yml"])
    ref = apollo_app.ref(namespace="gateway.yml")
    client.item_create(ref=ref, key="content", value="a: 1\n", comment="", operator="alice")
    namespace = client.namespace_get(ref=ref)
    assert namespace.format == "yml" and namespace.items[0].value == "a: 1\n"


def test_releases_are_made_read_and_rolled_back(apollo_app: ApolloApp, client):
    ref = apollo_app.ref()
    assert client.release_latest(ref=ref) is None  # never released: Apollo's 200 with an empty body
    client.item_create(ref=ref, key="k", value="1", comment="", operator="alice")
    first = client.release_create(ref=ref, title="first", comment="one", operator="bob")
    assert (first.name, first.comment, first.configurations, first.released_by) == (
        "first",
        "one",
        {"k": "1"},
        "bob",
    )
    assert first.released_at is not None
    client.item_update(ref=ref, key="k", value="2", comment="", operator="alice")
    second = client.release_create(ref=ref, title="second", comment="", operator="bob")
    assert second.id > first.id and client.release_latest(ref=ref) == second

    client.release_rollback(env="FAT", release_id=second.id, operator="bob")
    assert client.release_latest(ref=ref) == first
    history = apollo_app.server.release_history("FAT", apollo_app.app_id, "default", "application")
    assert [(r["id"], r["isAbandoned"], r["dataChangeLastModifiedBy"]) for r in history] == [
        (first.id, False, "bob"),
        (second.id, True, "bob"),
    ]


def test_keys_that_do_not_fit_a_path_use_encoded_items(apollo_app: ApolloApp, client):
    ref = apollo_app.ref()
    # Standard base64 with a "+", with a "/", both alphabets needed, non-ASCII, a space, path breakers.
    keys = ["a~>b", "a/b", "???", "???/\\", "数据库.密码", "with space", "semi;colon", "50%"]
    for key in keys:
        client.item_create(ref=ref, key=key, value=key, comment="", operator="alice")
        client.item_update(ref=ref, key=key, value=f"{key}!", comment="", operator="alice")
        assert client.item_get(ref=ref, key=key).value == f"{key}!"
    assert [i.key for i in client.namespace_get(ref=ref).items] == keys
    for key in keys:
        client.item_delete(ref=ref, key=key, operator="alice")
    assert client.namespace_get(ref=ref).items == []


def test_item_path_prefers_what_apollo_2_can_decode():
    ref = NamespaceRef("FAT", "app", "default", "application")
    base = "/openapi/v1/envs/FAT/apps/app/clusters/default/namespaces/application"
    assert item_path(ref, "spring.datasource.url") == f"{base}/items/spring.datasource.url"
    assert item_path(ref, "a/b") == f"{base}/encodedItems/{base64.b64encode(b'a/b').decode()}"
    # "???" is "Pz8/" in standard base64, whose "/" would split the path: the key itself is safe there.
    assert item_path(ref, "???") == f"{base}/items/%3F%3F%3F"
    # With a "/" in the key too, only the URL-safe alphabet is left (Apollo ≥ 3 decodes it).
    assert item_path(ref, "???/") == f"{base}/encodedItems/{base64.urlsafe_b64encode(b'???/').decode()}"
    assert item_path(ref, "a~>b") == f"{base}/encodedItems/YX4+Yg=="  # "+" and "=" are path characters
    assert item_path(ref, "..").startswith(f"{base}/encodedItems/")


def test_the_token_goes_raw_with_apollos_json_content_type(apollo_app: ApolloApp, client):
    client.item_create(ref=apollo_app.ref(), key="k", value="v", comment="", operator="alice")
    logged = apollo_app.server.requests[-1]
    assert logged.authorization == apollo_app.token
    assert logged.content_type == "application/json;charset=UTF-8"
    assert apollo_app.token not in repr(client)


# --- every typed error ----------------------------------------------------------------------------


def test_an_unknown_token_is_unauthorized_saying_so(apollo_app: ApolloApp):
    error = _error(lambda: ApolloClient(apollo_app.url, apollo_token()).namespace_get(ref=apollo_app.ref()))
    assert isinstance(error, Unauthorized) and error.permanent and error.status == 401
    assert error.details["reason"] == "token_unknown" and "does not know the Open API token" in error.message
    assert error.cause == "Unauthorized"  # Spring Boot's body: its "error", there is no "message"


def test_a_token_not_granted_is_unauthorized_naming_the_right_and_the_namespace(apollo_app: ApolloApp):
    token = apollo_token()
    apollo_app.server.add_consumer(token, {apollo_app.app_id: {"FAT": {"application": {"modify"}}}})
    limited = ApolloClient(apollo_app.url, token)
    ref = apollo_app.ref()
    limited.item_create(ref=ref, key="k", value="v", comment="", operator="alice")  # modify is granted
    error = _error(lambda: limited.release_create(ref=ref, title="t", comment="", operator="alice"))
    assert (
        isinstance(error, Unauthorized) and error.status == 403 and error.details["reason"] == "not_granted"
    )
    assert "not granted release rights" in error.message and str(ref) in error.message
    assert error.cause == "Access is denied"
    prod = apollo_app.ref(env="PRO")
    error = _error(lambda: limited.item_create(ref=prod, key="k", value="v", comment="", operator="alice"))
    assert "not granted modify rights" in error.message and "in PRO" in error.message
    release = apollo_app.client().release_create(ref=ref, title="t", comment="", operator="alice")
    error = _error(lambda: limited.release_rollback(env="FAT", release_id=release.id, operator="alice"))
    assert error.status == 403 and error.cause == "Forbidden operation. you don't have release permission"


def test_missing_namespaces_and_items_are_not_found(apollo_app: ApolloApp, client):
    missing = apollo_app.ref(namespace="missing")
    error = _error(lambda: client.namespace_get(ref=missing))
    assert isinstance(error, NotFound) and error.details["reason"] == "namespace_missing"
    assert error.message == f"Apollo has no namespace {missing}"
    error = _error(
        lambda: client.item_update(ref=apollo_app.ref(), key="nope", value="", comment="", operator="alice")
    )
    assert isinstance(error, NotFound) and error.details["reason"] == "item_missing"
    assert error.cause.startswith("item not found for appId:")
    assert isinstance(
        _error(lambda: client.item_delete(ref=apollo_app.ref(), key="nope", operator="alice")), NotFound
    )


@pytest.mark.parametrize(
    ("call", "reason", "message"),
    [
        (
            lambda c, r: c.item_create(ref=r, key="k", value="v", comment="", operator="mallory"),
            "user_unknown",
            "mallory is not an Apollo user",
        ),
        (
            lambda c, r: c.item_create(ref=r, key="dup", value="v", comment="", operator="alice"),
            "item_exists",
            "Apollo already has item dup",
        ),
        (
            lambda c, r: c.item_create(ref=r, key="k" * 129, value="v", comment="", operator="alice"),
            "too_long",
            "key too long. length limit:128",
        ),
        (
            lambda c, r: c.item_update(ref=r, key="dup", value="v", comment="c" * 257, operator="alice"),
            "too_long",
            "Comment length should not exceed 256 characters",
        ),
        (
            lambda c, r: c.release_create(ref=r, title="", comment="", operator="alice"),
            "",
            "Params(releaseTitle and releasedBy) can not be empty",
        ),
        (
            lambda c, r: c.release_rollback(env="FAT", release_id=9_000_000, operator="alice"),
            "release_unknown",
            "Apollo cannot roll back: release not found",
        ),
    ],
    ids=["unknown-user", "exists", "key-too-long", "comment-too-long", "no-title", "unknown-release"],
)
def test_refusals_are_invalid_with_a_reason(apollo_app: ApolloApp, client, call, reason, message):
    client.item_create(ref=apollo_app.ref(), key="dup", value="v", comment="", operator="alice")
    error = _error(lambda: call(client, apollo_app.ref()))
    assert isinstance(error, Invalid) and error.permanent and error.status == 400
    assert error.details["reason"] == reason
    assert message in str(error)


def test_rollback_refusals_say_why(apollo_app: ApolloApp, client):
    ref = apollo_app.ref()
    only = client.release_create(ref=ref, title="only", comment="", operator="alice")
    error = _error(lambda: client.release_rollback(env="FAT", release_id=only.id, operator="alice"))
    assert isinstance(error, Invalid) and error.details["reason"] == "only_one_active"
    second = client.release_create(ref=ref, title="second", comment="", operator="alice")
    client.release_rollback(env="FAT", release_id=second.id, operator="alice")
    error = _error(lambda: client.release_rollback(env="FAT", release_id=second.id, operator="alice"))
    assert isinstance(error, Invalid) and error.details["reason"] == "not_active"


def test_the_namespace_lock_refusals_have_their_reasons(apollo_app: ApolloApp, client):
    ref = apollo_app.ref()
    apollo_app.server.set_lock_switch(True, env="FAT")
    try:
        client.item_create(ref=ref, key="k", value="v", comment="", operator="alice")
        error = _error(lambda: client.item_update(ref=ref, key="k", value="x", comment="", operator="bob"))
        assert isinstance(error, Invalid) and error.details["reason"] == "locked"
        error = _error(lambda: client.release_create(ref=ref, title="t", comment="", operator="alice"))
        assert isinstance(error, Invalid) and error.details["reason"] == "self_release"
        assert client.release_create(ref=ref, title="t", comment="", operator="bob").configurations == {
            "k": "v"
        }
    finally:
        apollo_app.server.set_lock_switch(False, env="FAT")


def test_an_env_apollo_does_not_serve_is_a_permanent_invalid(apollo_app: ApolloApp, client):
    error = _error(lambda: client.namespace_get(ref=apollo_app.ref(env="NOPE")))
    assert isinstance(error, Invalid) and error.permanent and error.details["reason"] == "invalid_env"
    assert error.message == "Apollo has no environment NOPE"


def test_a_rate_limit_is_rate_limited_and_transient(apollo_app: ApolloApp):
    token = apollo_token()
    apollo_app.server.add_consumer(token, {apollo_app.app_id: "*"}, rate_limit=1)
    limited = ApolloClient(apollo_app.url, token)
    with pytest.raises(RateLimited) as caught:
        for _ in range(5):
            limited.namespace_get(ref=apollo_app.ref())
    assert not caught.value.permanent and caught.value.status == 429
    assert caught.value.cause == "Too Many Requests"
    apollo_app.server.inject_fault(r"/envclusters$", 429, retry_after=4)
    error = _error(lambda: apollo_app.client().env_clusters(app_id=apollo_app.app_id))
    assert isinstance(error, RateLimited) and error.retry_after == 4


def test_a_5xx_is_a_transient_server_error(apollo_app: ApolloApp, client):
    apollo_app.server.inject_fault(r"/releases$", 503, method="POST")
    error = _error(
        lambda: client.release_create(ref=apollo_app.ref(), title="t", comment="", operator="alice")
    )
    assert isinstance(error, ServerError) and not isinstance(error, RateLimited)
    assert not error.permanent and error.status == 503


def test_a_silent_server_is_a_timeout():
    # A socket that accepts and never answers: the read timeout must fire.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = ApolloClient(f"http://127.0.0.1:{port}", "t" * 40, timeout=0.5)
        ref = NamespaceRef("FAT", "app", "default", "application")
        for call in (
            lambda: client.namespace_get(ref=ref),
            lambda: client.item_create(ref=ref, key="k", value="v", comment="", operator="alice"),
            lambda: client.release_rollback(env="FAT", release_id=1, operator="alice"),
        ):
            error = _error(call)
            assert isinstance(error, Timeout) and not error.permanent


def test_nobody_listening_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    error = _error(lambda: ApolloClient(closed, "t" * 40).env_clusters(app_id="app"))
    assert isinstance(error, Unreachable) and not error.permanent
    assert "t" * 40 not in str(error)


# --- configuration --------------------------------------------------------------------------------


def test_for_token_follows_the_settings(settings, apollo_app: ApolloApp):
    settings.APOLLO_PORTAL_URL = ""
    assert ApolloClient.for_token(apollo_app.token) is None  # Apollo is off
    settings.APOLLO_PORTAL_URL = apollo_app.url
    assert ApolloClient.for_token(apollo_app.token).env_clusters(app_id=apollo_app.app_id)["FAT"] == [
        "default"
    ]
    with pytest.raises(Invalid):
        ApolloClient("", apollo_app.token)


def test_for_token_gives_up_after_apollo_timeout_seconds(settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        settings.APOLLO_PORTAL_URL = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings.APOLLO_TIMEOUT_SECONDS = 1
        started = time.monotonic()
        with pytest.raises(Timeout):
            ApolloClient.for_token("t" * 40).env_clusters(app_id="app")
        assert time.monotonic() - started < 5


def test_apollo_times_are_parsed_with_their_offset():
    parsed = parse_apollo_time("2026-11-30T11:02:03.123+0800")
    assert parsed == datetime(2026, 11, 30, 11, 2, 3, 123000, tzinfo=timezone(timedelta(hours=8)))
    assert parse_apollo_time(None) is None and parse_apollo_time("yesterday") is None
