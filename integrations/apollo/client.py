"""Apollo's Open API as the portal uses it: read a namespace, edit its items, release it, roll it back.

The contract is Apollo's ``docs/en/portal/apollo-open-api-platform.md`` and the portal's
``openapi/v1/controller`` classes (v2.5); the measured facts are in shared/reference/integrations-2.md
section A. A consumer token (40 hex characters, made by Apollo's admin at ``/open/add-consumer.html`` and
granted modify and/or release per app, env and namespace) is sent raw: ``Authorization: <token>``.

Every name that acts (``dataChangeCreatedBy``, ``dataChangeLastModifiedBy``, ``releasedBy``,
``operator``) must be an existing Apollo portal user, so callers pass the portal user's name and Apollo
records it.

Errors are the typed ones of ``integrations.errors``; ``cause`` is Apollo's own message. Apollo answers
in two shapes: its own ``{"status", "message", "timestamp", "exception"}`` and, for a token it does not
know (401) or a rate-limited one (429), Spring Boot's ``{"timestamp", "status", "error", "path"}``.
``details["reason"]`` names the refusals the portal branches on (``token_unknown``, ``not_granted``,
``item_exists``, ``user_unknown``, ``locked``, ``self_release``, ``not_active``, ``only_one_active``,
``release_unknown``, ``namespace_missing``, ``item_missing``, ``too_long``, ``invalid_env``).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from integrations.errors import (
    IntegrationError,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    parse_retry_after,
)
from integrations.http import make_session, transport_error

SYSTEM = "Apollo"
DEFAULT_TIMEOUT = (5.0, 15.0)
API = "/openapi/v1"
JSON_TYPE = "application/json;charset=UTF-8"  # what Apollo's documentation asks every call to send
# Keys made only of these go in the path as they are; any other key needs care (see item_path).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9._-]+")
# Characters a servlet container or Spring Security's firewall refuses in a path even percent-encoded.
_PATH_BREAKERS = frozenset("/\\%;")

# Apollo's 400 messages (BadRequestException and the controllers' preconditions) → a reason code.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^item already exists for itemKey:"), "item_exists"),
    (re.compile(r"^user not exists for userName:"), "user_unknown"),
    (re.compile(r"^namespace:.* is modified by "), "locked"),
    (re.compile(r"^Config can not be published by yourself"), "self_release"),
    (re.compile(r"^release is not active"), "not_active"),
    (re.compile(r"because there is only one active release"), "only_one_active"),
    (re.compile(r"^release not found"), "release_unknown"),
    (re.compile(r"too long|should not exceed|length limit", re.IGNORECASE), "too_long"),
    (re.compile(r"^namespace not (found|exist)"), "namespace_missing"),
    (re.compile(r"^item not found"), "item_missing"),
)


@dataclass(frozen=True)
class NamespaceRef:
    """Where a namespace lives in Apollo."""

    env: str  # Apollo env, e.g. "FAT", "PRO"
    app_id: str
    cluster: str  # usually "default"
    namespace: str  # "application", or "x.yml" etc.

    def __str__(self) -> str:
        return f"{self.app_id}/{self.cluster}/{self.namespace} in {self.env}"


@dataclass(frozen=True)
class ApolloItem:
    key: str
    value: str
    comment: str
    created_by: str
    modified_by: str
    created_at: datetime | None  # parsed from Apollo's "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
    modified_at: datetime | None


@dataclass(frozen=True)
class ApolloNamespace:
    ref: NamespaceRef
    format: str  # "properties", "yaml", ...
    comment: str
    items: list[ApolloItem] = field(default_factory=list)  # Apollo's order


@dataclass(frozen=True)
class ApolloRelease:
    id: int
    name: str  # the release title
    comment: str
    configurations: dict[str, str]
    released_by: str  # dataChangeCreatedBy of the release
    released_at: datetime | None


def parse_apollo_time(value: Any) -> datetime | None:
    """Apollo's ``2026-11-30T11:02:03.123+0800`` (Gson's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``); None when absent
    or unreadable: a timestamp is shown, never relied on."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)  # Python 3.11 reads "+0800" as well as "+08:00" and "Z"
    except ValueError:
        return None


def _segment(value: str) -> str:
    return quote(value, safe="")


def namespace_path(ref: NamespaceRef) -> str:
    return (
        f"{API}/envs/{_segment(ref.env)}/apps/{_segment(ref.app_id)}/clusters/{_segment(ref.cluster)}"
        f"/namespaces/{_segment(ref.namespace)}"
    )


def item_path(ref: NamespaceRef, key: str) -> str:
    """The item's URL path. A key that is not plain goes base64-encoded under ``encodedItems/`` (Apollo ≥
    2.1), because Tomcat refuses ``%2F`` and Spring Security ``%5C``, ``%25`` and ``%3B`` in a path.
    Apollo 2.x decodes that segment with the standard alphabet only, whose ``/`` would split the path: for
    such a key without breakers the percent-encoded key is used instead; a key with both (rare) gets the
    URL-safe alphabet, which Apollo decodes from 3.0 on (2.x answers 500 IllegalArgumentException)."""
    base = namespace_path(ref)
    if _PLAIN_KEY.fullmatch(key) and key not in (".", ".."):
        return f"{base}/items/{key}"
    standard = base64.b64encode(key.encode()).decode()
    if "/" not in standard:
        return f"{base}/encodedItems/{standard}"  # "+" and "=" are plain path characters
    if not _PATH_BREAKERS.intersection(key):
        return f"{base}/items/{_segment(key)}"
    return f"{base}/encodedItems/{base64.urlsafe_b64encode(key.encode()).decode()}"


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_from_response(
    response: requests.Response, what: str, *, ref: NamespaceRef | None = None, right: str = ""
) -> IntegrationError:
    """The typed error for Apollo's non-200 answer to ``what`` ("the item timeout of …"); ``right`` is the
    grant the call needs ("modify" or "release"), for a 403's message."""
    code = response.status_code
    body = _body(response)
    # Apollo's own shape carries "message"; Spring Boot's (401, 429) only the status's "error" phrase.
    cause = str(body.get("message") or body.get("error") or response.reason or f"HTTP {code}")
    exception = str(body.get("exception") or "")
    reason = next((name for pattern, name in _REASONS if pattern.search(cause)), "")
    details: dict[str, Any] = {"exception": exception, "reason": reason}
    kwargs: dict[str, Any] = {"cause": cause, "status": code, "details": details}
    where = f" on {ref}" if ref is not None else ""
    if code == 401:
        details["reason"] = "token_unknown"
        return Unauthorized(
            "Apollo does not know the Open API token (401): it was mistyped, deleted or never created; "
            "ask Apollo's admin for the consumer token (/open/manage.html)",
            **kwargs,
        )
    if code == 403:
        details["reason"] = "not_granted"
        need = f"{right} rights" if right else "access"
        return Unauthorized(
            f"The Apollo token is valid but not granted {need}{where} (403): grant it on Apollo's "
            "open platform page (/open/manage.html)",
            **kwargs,
        )
    if code == 404:
        if reason == "item_missing":
            return NotFound(f"Apollo has no {what}{where}", **kwargs)
        if reason == "namespace_missing":
            return NotFound(f"Apollo has no namespace {ref or what}", **kwargs)
        return NotFound(f"{what} not found in Apollo", **kwargs)
    if code == 429:
        return RateLimited(
            f"Apollo rate-limited the Open API token for {what}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            **kwargs,
        )
    if code == 400:
        return Invalid(_invalid_message(reason, cause, what), **kwargs)
    if code >= 500 and exception == "java.lang.IllegalArgumentException":
        # Apollo's Env.valueOf and base64 decoding throw this for input it cannot take: never transient.
        if cause.endswith(" not exist"):
            details["reason"] = "invalid_env"
            return Invalid(f"Apollo has no environment {cause.removesuffix(' not exist')}", **kwargs)
        return Invalid(f"Apollo could not take {what}", **kwargs)
    if code >= 500:
        return ServerError(f"Apollo answered {code} for {what}", **kwargs)
    return IntegrationError(f"Apollo answered {code} for {what}", **kwargs)


def _invalid_message(reason: str, cause: str, what: str) -> str:
    if reason == "user_unknown":
        user = cause.split("userName:", 1)[-1]
        return (
            f"{user} is not an Apollo user: Apollo records the portal user as operator, "
            "so the user must exist in Apollo"
        )
    if reason == "item_exists":
        return f"Apollo already has {what}"
    if reason == "locked":
        return f"Another user has unreleased edits in this namespace (Apollo's namespace lock): {cause}"
    if reason == "self_release":
        return "Apollo's namespace lock forbids releasing your own edits: someone else must release them"
    if reason in ("not_active", "only_one_active", "release_unknown"):
        return f"Apollo cannot roll back: {cause}"
    return f"Apollo refused {what}: {cause}"


class ApolloClient:
    def __init__(
        self, base_url: str, token: str, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT
    ) -> None:
        if not base_url:
            raise Invalid("Apollo is not configured (no APOLLO_PORTAL_URL)")
        self.base_url = base_url.rstrip("/")
        self._session = make_session(timeout)
        self._session.headers["Authorization"] = token  # raw: Apollo's consumer tokens take no scheme
        self._session.headers["Content-Type"] = JSON_TYPE
        self._session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:  # the token is the credential: never in logs or tracebacks
        return f"ApolloClient({self.base_url!r})"

    @classmethod
    def for_token(cls, token: str) -> ApolloClient | None:
        """A client for one project's token at ``APOLLO_PORTAL_URL``; None when Apollo is off (unset)."""
        from django.conf import settings

        url = getattr(settings, "APOLLO_PORTAL_URL", "")
        if not url:
            return None
        seconds = float(getattr(settings, "APOLLO_TIMEOUT_SECONDS", DEFAULT_TIMEOUT[1]))
        return cls(url, token, timeout=(min(DEFAULT_TIMEOUT[0], seconds), seconds))

    # -- plumbing ------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        ref: NamespaceRef | None = None,
        right: str = "",
        **kwargs: Any,
    ) -> requests.Response:
        try:
            response = self._session.request(method, f"{self.base_url}{path}", **kwargs)
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc, SYSTEM) from exc
        if response.status_code != 200:
            raise error_from_response(response, what, ref=ref, right=right)
        return response

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"Apollo sent no JSON for {what}", cause=response.text[:200]) from None

    # -- reads ---------------------------------------------------------------------------------------

    def env_clusters(self, *, app_id: str) -> dict[str, list[str]]:
        """{env: [cluster, …]} for every environment Apollo's portal serves (an app absent from one has
        an empty list there)."""
        what = f"the environments of app {app_id}"
        response = self._call("GET", f"{API}/apps/{_segment(app_id)}/envclusters", what)
        return {str(e["env"]): [str(c) for c in e.get("clusters") or []] for e in self._json(response, what)}

    def namespace_get(self, *, ref: NamespaceRef) -> ApolloNamespace:
        what = f"namespace {ref}"
        data = self._json(self._call("GET", namespace_path(ref), what, ref=ref), what)
        if not data:
            raise NotFound(f"Apollo has no namespace {ref}", status=200)
        # Lines edited in Apollo's text mode may be comments or blanks (an empty key): not configuration.
        items = [_item(i) for i in data.get("items") or [] if i.get("key")]
        return ApolloNamespace(
            ref=ref, format=str(data.get("format") or ""), comment=str(data.get("comment") or ""), items=items
        )

    def item_get(self, *, ref: NamespaceRef, key: str) -> ApolloItem:
        what = f"item {key}"
        data = self._json(self._call("GET", item_path(ref, key), what, ref=ref), what)
        if not data:
            raise NotFound(f"Apollo has no {what} on {ref}", status=200)
        return _item(data)

    # -- writes --------------------------------------------------------------------------------------

    def item_create(
        self, *, ref: NamespaceRef, key: str, value: str, comment: str, operator: str
    ) -> ApolloItem:
        what = f"item {key}"
        body = {"key": key, "value": value, "comment": comment, "dataChangeCreatedBy": operator}
        path = f"{namespace_path(ref)}/items"
        response = self._call("POST", path, what, ref=ref, right="modify", json=body)
        return _item(self._json(response, what))

    def item_update(
        self,
        *,
        ref: NamespaceRef,
        key: str,
        value: str,
        comment: str,
        operator: str,
        create_if_missing: bool = False,
    ) -> None:
        body = {"key": key, "value": value, "comment": comment, "dataChangeLastModifiedBy": operator}
        params = {}
        if create_if_missing:
            body["dataChangeCreatedBy"] = operator
            params["createIfNotExists"] = "true"
        self._call(
            "PUT", item_path(ref, key), f"item {key}", ref=ref, right="modify", json=body, params=params
        )

    def item_delete(self, *, ref: NamespaceRef, key: str, operator: str) -> None:
        self._call(
            "DELETE",
            item_path(ref, key),
            f"item {key}",
            ref=ref,
            right="modify",
            params={"operator": operator},
        )

    def release_create(self, *, ref: NamespaceRef, title: str, comment: str, operator: str) -> ApolloRelease:
        what = f"a release of {ref}"
        body = {
            "releaseTitle": title,
            "releaseComment": comment,
            "releasedBy": operator,
            "isEmergencyPublish": False,
        }
        path = f"{namespace_path(ref)}/releases"
        response = self._call("POST", path, what, ref=ref, right="release", json=body)
        return _release(self._json(response, what))

    def release_latest(self, *, ref: NamespaceRef) -> ApolloRelease | None:
        """The active release, or None when the namespace was never released (Apollo: 200, empty body)."""
        what = f"the latest release of {ref}"
        data = self._json(self._call("GET", f"{namespace_path(ref)}/releases/latest", what, ref=ref), what)
        return _release(data) if data else None

    def release_rollback(self, *, env: str, release_id: int, operator: str) -> None:
        """Abandon release ``release_id``; the namespace's previous active release becomes current.

        Apollo abandons whichever active release it is given, so a caller rolls back the *latest* (see
        ``release_latest``): abandoning an older one changes nothing that is served. "Back to release N"
        is repeated rollbacks of the latest until N is latest."""
        path = f"{API}/envs/{_segment(env)}/releases/{int(release_id)}/rollback"
        self._call(
            "PUT", path, f"release {release_id} in {env}", right="release", params={"operator": operator}
        )


def _item(data: dict[str, Any]) -> ApolloItem:
    return ApolloItem(
        key=str(data.get("key") or ""),
        value="" if data.get("value") is None else str(data["value"]),
        comment=str(data.get("comment") or ""),
        created_by=str(data.get("dataChangeCreatedBy") or ""),
        modified_by=str(data.get("dataChangeLastModifiedBy") or ""),
        created_at=parse_apollo_time(data.get("dataChangeCreatedTime")),
        modified_at=parse_apollo_time(data.get("dataChangeLastModifiedTime")),
    )


def _release(data: dict[str, Any]) -> ApolloRelease:
    configurations = data.get("configurations") or {}
    return ApolloRelease(
        id=int(data["id"]),
        name=str(data.get("name") or ""),
        comment=str(data.get("comment") or ""),
        configurations={str(k): "" if v is None else str(v) for k, v in configurations.items()},
        released_by=str(data.get("dataChangeCreatedBy") or ""),
        released_at=parse_apollo_time(data.get("dataChangeCreatedTime")),
    )
