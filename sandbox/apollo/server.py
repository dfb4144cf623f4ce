"""Apollo stand-in: the part of Apollo's portal Open API (``/openapi/v1``) the portal uses, written from
Apollo's documentation (docs/en/portal/apollo-open-api-platform.md) and the behaviour of its v2.5
controllers as measured in shared/reference/integrations-2.md section A. Apollo's server is not on Maven
Central, so tests cannot run it; none of its code is used here.

What it honours (state in memory, optionally kept in a JSON file; one lock around all of it):
- Consumers: ``Authorization: <token>`` (raw). A missing or unknown token is 401 in Spring Boot's error
  shape ``{"timestamp","status","error","path"}``; a token over its rate limit is 429 in the same shape.
  Grants per app → env → namespace → {"modify", "release"}, ``"*"`` for all. Writes need the grant (403
  ``Access is denied`` in Apollo's shape before anything else is looked at, so a namespace-only grant
  gets 403 for a missing namespace and an app-wide one 404); reads need only a known token, as in 2.5.
- Users: a fixed set; every ``dataChangeCreatedBy``/``dataChangeLastModifiedBy``/``releasedBy``/
  ``operator`` must be one (400 ``user not exists for userName:%s``).
- Namespaces per (env, app, cluster, name) with ordered items (key ≤128, value ≤20000, comment ≤256;
  audit fields; times as ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``); null fields are left out, as Gson does.
- Releases with ids counting up per env (each env is its own config database in Apollo), a snapshot of
  the items, and an abandoned flag. ``releases/latest`` answers 200 with an empty body when there is no
  active release (also for a namespace that does not exist: Apollo does not look). Rollback abandons the
  given release if it is active and its namespace has another active one (400 ``release is not active``,
  400 ``Can't rollback namespace(…) because there is only one active release``, 400 ``release not found``
  for an unknown id in that env); like Apollo it does not insist on the latest.
- Errors in Apollo's shape ``{"status","message","timestamp","exception"}`` with Apollo's messages; a
  wrong method on a known path is 400 (Apollo's handler maps HttpRequestMethodNotSupportedException so);
  an unknown env is 500 IllegalArgumentException ``X not exist`` (Env.valueOf), as in Apollo.
- Keys that do not fit a path: ``…/encodedItems/{base64}`` for GET/PUT/DELETE (standard alphabet, then
  URL-safe, as Apollo 3 decodes; 2.x knows only the standard one); a percent-encoded ``/``, ``\\``, ``%``
  or ``;`` in a path is refused with 400, as Tomcat and Spring Security's firewall do.

Stricter than Apollo, on purpose: a release title over 64 or a release comment over 256 characters is
400 (Apollo's database refuses them with a 500).

Switches: ``set_lock_switch(True, env=…)`` is Apollo's ``namespace.lock.switch`` (the first editor locks
the namespace until it is released: another editor gets 400 ``namespace:%s is modified by %s``, the
editor cannot release, 400 ``Config can not be published by yourself.``, unless ``isEmergencyPublish``);
``add_consumer(..., rate_limit=N)`` allows N calls a second per token (no warm-up second, unlike Apollo);
``inject_fault`` answers the next matching calls with an error (sandbox.faults).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.faults import Faults
from sandbox.standin_http import DispatchingHandler, ThreadedStandin

KEY_MAX = 128
VALUE_MAX = 20_000
COMMENT_MAX = 256
RELEASE_TITLE_MAX = 64
RELEASE_COMMENT_MAX = 256
DEFAULT_ENVS = ("DEV", "FAT", "UAT", "PRO")
RIGHTS = frozenset({"modify", "release"})
FORMATS = frozenset({"properties", "xml", "json", "yml", "yaml", "txt"})
_REQUEST_LOG_SIZE = 10_000

BAD_REQUEST = "com.ctrip.framework.apollo.common.exception.BadRequestException"
NOT_FOUND = "com.ctrip.framework.apollo.common.exception.NotFoundException"
ACCESS_DENIED = "org.springframework.security.access.AccessDeniedException"
ILLEGAL_ARGUMENT = "java.lang.IllegalArgumentException"
# Refused in a path even percent-encoded: %2F and %5C by Tomcat, %25 and %3B by Spring Security.
_REJECTED_ESCAPES = re.compile(r"%(2f|5c|25|3b)", re.IGNORECASE)


class ApolloError(Exception):
    """An answer in Apollo's own error shape (GlobalDefaultExceptionHandler)."""

    def __init__(self, status: int, message: str, exception: str = BAD_REQUEST) -> None:
        super().__init__(message)
        self.status, self.message, self.exception = status, message, exception


class BootError(Exception):
    """An answer in Spring Boot's error shape (``response.sendError`` before Apollo's handler)."""

    def __init__(self, status: int) -> None:
        super().__init__(HTTPStatus(status).phrase)
        self.status = status


def apollo_time(epoch: float) -> str:
    """Gson's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` in the server's zone, e.g. ``2026-11-30T11:02:03.123+0800``."""
    moment = datetime.fromtimestamp(epoch).astimezone()
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}{moment:%z}"


def namespace_format(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return suffix if suffix in FORMATS and suffix != "properties" else "properties"


@dataclass
class Item:
    key: str
    value: str
    comment: str | None
    created_by: str
    modified_by: str
    created_at: float
    modified_at: float

    def as_json(self) -> dict[str, Any]:
        return _without_nulls(
            {
                "key": self.key,
                "value": self.value,
                "type": 0,
                "comment": self.comment,
                "dataChangeCreatedBy": self.created_by,
                "dataChangeLastModifiedBy": self.modified_by,
                "dataChangeCreatedTime": apollo_time(self.created_at),
                "dataChangeLastModifiedTime": apollo_time(self.modified_at),
            }
        )


@dataclass
class Namespace:
    env: str
    app_id: str
    cluster: str
    name: str
    format: str
    comment: str
    created_by: str
    created_at: float
    items: list[Item] = field(default_factory=list)
    lock_owner: str | None = None

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    def as_json(self) -> dict[str, Any]:
        return _without_nulls(
            {
                "appId": self.app_id,
                "clusterName": self.cluster,
                "namespaceName": self.name,
                "comment": self.comment or None,
                "format": self.format,
                "isPublic": False,
                "items": [i.as_json() for i in self.items],
                "dataChangeCreatedBy": self.created_by,
                "dataChangeLastModifiedBy": self.created_by,
                "dataChangeCreatedTime": apollo_time(self.created_at),
                "dataChangeLastModifiedTime": apollo_time(self.created_at),
            }
        )


@dataclass
class Release:
    id: int
    env: str
    app_id: str
    cluster: str
    namespace: str
    name: str
    comment: str | None
    configurations: dict[str, str]
    created_by: str
    modified_by: str
    created_at: float
    modified_at: float
    abandoned: bool = False

    def as_json(self) -> dict[str, Any]:
        return _without_nulls(
            {
                "id": self.id,
                "appId": self.app_id,
                "clusterName": self.cluster,
                "namespaceName": self.namespace,
                "name": self.name,
                "configurations": dict(self.configurations),
                "comment": self.comment,
                "dataChangeCreatedBy": self.created_by,
                "dataChangeLastModifiedBy": self.modified_by,
                "dataChangeCreatedTime": apollo_time(self.created_at),
                "dataChangeLastModifiedTime": apollo_time(self.modified_at),
            }
        )


@dataclass
class Consumer:
    grants: dict[str, Any]
    rate_limit: int | None = None


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    body: Any  # the decoded JSON body, or None
    authorization: str
    content_type: str


def _without_nulls(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _normalise_grants(grants: Any, depth: int = 0) -> Any:
    """Envs (the second level) in upper case, as Apollo names them; rights as sorted lists (JSON); ``"*"``
    kept as is at any level."""
    if grants == "*":
        return "*"
    if isinstance(grants, dict):
        return {(k.upper() if depth == 1 else k): _normalise_grants(v, depth + 1) for k, v in grants.items()}
    rights = set(grants)
    if not rights <= RIGHTS:
        raise ValueError(f"unknown rights {sorted(rights - RIGHTS)}; use {sorted(RIGHTS)}")
    return sorted(rights)


class ApolloStandin(ThreadedStandin):
    """Serve the Open API on ``host:port`` (0 picks a free port) from a background thread."""

    thread_name = "apollo-standin"

    def __init__(
        self,
        users: Iterable[str] = ("apollo",),
        *,
        envs: Iterable[str] = DEFAULT_ENVS,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | str | None = None,
    ) -> None:
        self._host, self._port = host, port
        self.lock = threading.RLock()
        self.envs: list[str] = [e.upper() for e in envs]
        self.users: set[str] = set(users)
        self.consumers: dict[str, Consumer] = {}
        self.apps: dict[str, dict[str, Any]] = {}  # app id -> {"name", "clusters": {env: [cluster, …]}}
        self.namespaces: dict[tuple[str, str, str, str], Namespace] = {}
        self.releases: dict[str, list[Release]] = {}  # env -> releases in id order
        self.next_release_id: dict[str, int] = {}
        self.lock_switch: set[str] = set()  # envs with namespace.lock.switch on
        self.faults = Faults()
        self._windows: dict[str, tuple[int, int]] = {}  # token -> (second, calls in it)
        self._requests: deque[tuple[str, str]] = deque(maxlen=_REQUEST_LOG_SIZE)
        self._records: deque[LoggedRequest] = deque(maxlen=_REQUEST_LOG_SIZE)
        self.state_file = Path(state_file) if state_file else None
        self._load()

    def handler_class(self) -> type[DispatchingHandler]:
        return _Handler

    # -- administration (tests and `make run`) -------------------------------------------------------

    @property
    def root(self) -> str:
        return str(self.state_file) if self.state_file else "memory"

    def add_user(self, name: str) -> None:
        with self.lock:
            self.users.add(name)
            self.save()

    def add_consumer(self, token: str, grants: dict[str, Any], *, rate_limit: int | None = None) -> None:
        """A third-party app's token with ``{app_id: {env: {namespace: {"modify", "release"}}}}``; ``"*"``
        in place of any level grants everything below it (``{app: "*"}`` is Apollo's app-wide grant)."""
        with self.lock:
            self.consumers[token] = Consumer(_normalise_grants(grants), rate_limit)
            self.save()

    def set_rate_limit(self, token: str, per_second: int | None) -> None:
        with self.lock:
            self.consumers[token].rate_limit = per_second
            self._windows.pop(token, None)
            self.save()

    def add_app(
        self,
        app_id: str,
        envs: Iterable[str] = ("FAT", "PRO"),
        clusters: Iterable[str] = ("default",),
        namespaces: Iterable[str] = ("application",),
        *,
        name: str = "",
        owner: str = "apollo",
    ) -> None:
        """Create the app (or add to it) with an empty namespace per env × cluster × namespace."""
        now = time.time()
        with self.lock:
            app = self.apps.setdefault(app_id, {"name": name or app_id, "owner": owner, "clusters": {}})
            for env in (e.upper() for e in envs):
                if env not in self.envs:
                    self.envs.append(env)
                known = app["clusters"].setdefault(env, [])
                for cluster in clusters:
                    if cluster not in known:
                        known.append(cluster)
                    for namespace in namespaces:
                        key = (env, app_id, cluster, namespace)
                        if key not in self.namespaces:
                            self.namespaces[key] = Namespace(
                                env, app_id, cluster, namespace, namespace_format(namespace), "", owner, now
                            )
            self.save()

    def set_lock_switch(self, on: bool, env: str | None = None) -> None:
        """Apollo's ``namespace.lock.switch`` (a ServerConfig of each env's config database)."""
        with self.lock:
            envs = {env.upper()} if env else set(self.envs)
            self.lock_switch = self.lock_switch | envs if on else self.lock_switch - envs
            if not on:
                for namespace in self.namespaces.values():
                    if namespace.env in envs:
                        namespace.lock_owner = None
            self.save()

    def inject_fault(self, pattern: str, status: int = 500, count: int = 1, method: str | None = None, **kw):
        self.faults.inject(pattern, status, count, method, **kw)

    @property
    def requests(self) -> list[LoggedRequest]:
        """The recent Open API requests, oldest first."""
        with self.lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self.lock:
            self._records.clear()
            self._requests.clear()

    def release_history(self, env: str, app_id: str, cluster: str, namespace: str) -> list[dict[str, Any]]:
        """Every release of the namespace, abandoned ones too (the Open API shows only the latest active)."""
        with self.lock:
            return [
                {**r.as_json(), "isAbandoned": r.abandoned}
                for r in self.releases.get(env.upper(), [])
                if (r.app_id, r.cluster, r.namespace) == (app_id, cluster, namespace)
            ]

    # -- state on disk (optional) --------------------------------------------------------------------

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text())
        self.envs = state["envs"]
        self.users = set(state["users"])
        self.consumers = {t: Consumer(**c) for t, c in state["consumers"].items()}
        self.apps = state["apps"]
        for raw in state["namespaces"]:
            namespace = Namespace(**{**raw, "items": [Item(**i) for i in raw["items"]]})
            self.namespaces[(namespace.env, namespace.app_id, namespace.cluster, namespace.name)] = namespace
        self.releases = {env: [Release(**r) for r in rows] for env, rows in state["releases"].items()}
        self.next_release_id = state["next_release_id"]
        self.lock_switch = set(state["lock_switch"])

    def save(self) -> None:
        if self.state_file is None:
            return
        with self.lock:
            state = {
                "envs": self.envs,
                "users": sorted(self.users),
                "consumers": {t: asdict(c) for t, c in self.consumers.items()},
                "apps": self.apps,
                "namespaces": [asdict(n) for n in self.namespaces.values()],
                "releases": {env: [asdict(r) for r in rows] for env, rows in self.releases.items()},
                "next_release_id": self.next_release_id,
                "lock_switch": sorted(self.lock_switch),
            }
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_suffix(".tmp")
            partial.write_text(json.dumps(state))
            partial.replace(self.state_file)

    # -- checks shared by the endpoints --------------------------------------------------------------

    def consumer(self, token: str) -> Consumer:
        """The token's consumer; 401 when unknown, 429 when over its rate limit."""
        with self.lock:
            consumer = self.consumers.get(token) if token else None
            if consumer is None:
                raise BootError(401)
            if consumer.rate_limit:
                second = int(time.monotonic())
                start, calls = self._windows.get(token, (second, 0))
                calls = calls + 1 if start == second else 1
                self._windows[token] = (second, calls)
                if calls > consumer.rate_limit:
                    raise BootError(429)
            return consumer

    @staticmethod
    def granted(consumer: Consumer, app_id: str, env: str, namespace: str, right: str) -> bool:
        grants: Any = consumer.grants.get(app_id)
        if grants == "*":
            return True
        if not isinstance(grants, dict):
            return False
        for per_env in (grants.get(env), grants.get("*")):
            if per_env == "*":
                return True
            if isinstance(per_env, dict):
                for rights in (per_env.get(namespace), per_env.get("*")):
                    if rights == "*" or (rights and right in rights):
                        return True
        return False

    def check_user(self, name: Any) -> None:
        if name not in self.users:
            raise ApolloError(400, f"user not exists for userName:{name if name is not None else 'null'}")

    def check_env(self, env: str) -> None:
        if env not in self.envs:
            raise ApolloError(500, f"{env} not exist", ILLEGAL_ARGUMENT)

    def namespace(self, env: str, app_id: str, cluster: str, name: str) -> Namespace:
        self.check_env(env)
        found = self.namespaces.get((env, app_id, cluster, name))
        if found is None:
            raise ApolloError(
                404,
                f"namespace not found for appId:{app_id} clusterName:{cluster} namespaceName:{name}",
                NOT_FOUND,
            )
        return found

    def acquire_lock(self, namespace: Namespace, user: str) -> None:
        if namespace.env not in self.lock_switch:
            return
        if namespace.lock_owner is None:
            namespace.lock_owner = user
        elif namespace.lock_owner != user:
            raise ApolloError(400, f"namespace:{namespace.name} is modified by {namespace.lock_owner}")

    def active_releases(self, env: str, app_id: str, cluster: str, name: str) -> list[Release]:
        """Newest first."""
        return [
            r
            for r in reversed(self.releases.get(env, []))
            if not r.abandoned and (r.app_id, r.cluster, r.namespace) == (app_id, cluster, name)
        ]

    # -- endpoints -----------------------------------------------------------------------------------

    def env_clusters(self, app_id: str) -> list[dict[str, Any]]:
        clusters = self.apps.get(app_id, {}).get("clusters", {})
        return [{"env": env, "clusters": list(clusters.get(env, []))} for env in self.envs]

    def app_get(self, app_id: str) -> dict[str, Any]:
        app = self.apps.get(app_id)
        if app is None:
            raise ApolloError(400, f"App not found: {app_id}")
        return {
            "name": app["name"],
            "appId": app_id,
            "orgId": "TEST1",
            "orgName": "样例部门1",
            "ownerName": app["owner"],
            "ownerEmail": f"{app['owner']}@example.com",
            "dataChangeCreatedBy": app["owner"],
            "dataChangeLastModifiedBy": app["owner"],
        }

    def namespaces_list(self, env: str, app_id: str, cluster: str) -> list[dict[str, Any]]:
        self.check_env(env)
        return [
            n.as_json() for (e, a, c, _), n in self.namespaces.items() if (e, a, c) == (env, app_id, cluster)
        ]

    def lock_get(self, namespace: Namespace) -> dict[str, Any]:
        return _without_nulls(
            {
                "namespaceName": namespace.name,
                "isLocked": namespace.lock_owner is not None,
                "lockedBy": namespace.lock_owner,
            }
        )

    def items_page(self, namespace: Namespace, query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            page = int((query.get("page") or ["0"])[-1])
            size = int((query.get("size") or ["50"])[-1])
        except ValueError as exc:
            raise ApolloError(
                500, f"Failed to convert value: {exc}", "java.lang.NumberFormatException"
            ) from None
        if page < 0:
            raise ApolloError(400, "findItemsByNamespace.page: page should be positive or 0")
        if size <= 0:
            raise ApolloError(400, "findItemsByNamespace.size: size should be positive number")
        chunk = namespace.items[page * size : (page + 1) * size]
        return {
            "content": [i.as_json() for i in chunk],
            "page": page,
            "size": size,
            "total": len(namespace.items),
        }

    def item_get(self, namespace: Namespace, key: str) -> dict[str, Any]:
        item = namespace.item(key)
        if item is None:
            raise _item_not_found(namespace, key)
        return item.as_json()

    @staticmethod
    def _check_item_lengths(key: str, value: str) -> None:
        if len(key) > KEY_MAX:
            raise ApolloError(400, f"key too long. length limit:{KEY_MAX}")
        if len(value) > VALUE_MAX:
            raise ApolloError(400, f"value too long. length limit:{VALUE_MAX}")

    @staticmethod
    def _check_comment(comment: Any) -> None:
        if comment and len(str(comment)) > COMMENT_MAX:
            raise ApolloError(400, f"Comment length should not exceed {COMMENT_MAX} characters")

    def item_create(self, where: tuple[str, str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        key, creator = body.get("key"), body.get("dataChangeCreatedBy")
        if not key or not creator:
            raise ApolloError(400, "key and dataChangeCreatedBy should not be null or empty")
        if body.get("value") is None:
            raise ApolloError(400, "value should not be null")
        self.check_user(creator)
        self._check_comment(body.get("comment"))
        namespace = self.namespace(*where)
        return self._insert(namespace, str(key), body, str(creator)).as_json()

    def _insert(self, namespace: Namespace, key: str, body: dict[str, Any], creator: str) -> Item:
        if namespace.item(key) is not None:
            raise ApolloError(400, f"item already exists for itemKey:{key}")
        value = str(body["value"])
        self._check_item_lengths(key, value)
        self.acquire_lock(namespace, creator)
        now = time.time()
        comment = body.get("comment")
        item = Item(key, value, None if comment is None else str(comment), creator, creator, now, now)
        namespace.items.append(item)
        return item

    def item_update(
        self, where: tuple[str, str, str, str], key: str, body: Any, query: dict[str, list[str]]
    ) -> None:
        if not isinstance(body, dict):
            raise ApolloError(400, "item payload can not be empty")
        editor = body.get("dataChangeLastModifiedBy")
        if not body.get("key") or not editor:
            raise ApolloError(400, "key and dataChangeLastModifiedBy can not be empty")
        if body["key"] != key:
            raise ApolloError(400, "Key in path and payload is not consistent")
        if body.get("value") is None:
            raise ApolloError(400, "value should not be null")
        self.check_user(editor)
        self._check_comment(body.get("comment"))
        create = (query.get("createIfNotExists") or ["false"])[-1].lower() == "true"
        if create and not body.get("dataChangeCreatedBy"):
            raise ApolloError(400, "dataChangeCreatedBy is required when createIfNotExists is true")
        namespace = self.namespace(*where)
        item = namespace.item(key)
        if item is None:
            if not create:
                raise _item_not_found(namespace, key)
            # Apollo's createOrUpdateItem creates with the body's creator, which it does not look up.
            self._insert(namespace, key, body, str(body["dataChangeCreatedBy"]))
            return
        value = str(body["value"])
        self._check_item_lengths(key, value)
        self.acquire_lock(namespace, str(editor))
        comment = body.get("comment")
        item.value, item.comment = value, None if comment is None else str(comment)
        item.modified_by, item.modified_at = str(editor), time.time()

    def item_delete(self, where: tuple[str, str, str, str], key: str, query: dict[str, list[str]]) -> None:
        operator = _required_param(query, "operator")
        self.check_user(operator)
        namespace = self.namespace(*where)
        item = namespace.item(key)
        if item is None:
            raise _item_not_found(namespace, key)
        self.acquire_lock(namespace, operator)
        namespace.items.remove(item)

    def release_create(self, where: tuple[str, str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        title, releaser = body.get("releaseTitle"), body.get("releasedBy")
        if not title or not releaser:
            raise ApolloError(400, "Params(releaseTitle and releasedBy) can not be empty")
        self.check_user(releaser)
        if len(str(title)) > RELEASE_TITLE_MAX:
            raise ApolloError(400, f"releaseTitle too long. length limit:{RELEASE_TITLE_MAX}")
        comment = body.get("releaseComment")
        if comment and len(str(comment)) > RELEASE_COMMENT_MAX:
            raise ApolloError(400, f"releaseComment too long. length limit:{RELEASE_COMMENT_MAX}")
        env, app_id, cluster, name = where
        namespace = self.namespace(*where)
        if (
            env in self.lock_switch
            and not body.get("isEmergencyPublish")
            and namespace.lock_owner == releaser
        ):
            raise ApolloError(400, "Config can not be published by yourself.")
        release_id = self.next_release_id.get(env, 1)
        self.next_release_id[env] = release_id + 1
        now = time.time()
        release = Release(
            id=release_id,
            env=env,
            app_id=app_id,
            cluster=cluster,
            namespace=name,
            name=str(title),
            comment=None if comment is None else str(comment),
            configurations={i.key: i.value for i in namespace.items},
            created_by=str(releaser),
            modified_by=str(releaser),
            created_at=now,
            modified_at=now,
        )
        self.releases.setdefault(env, []).append(release)
        namespace.lock_owner = None  # a release ends the editing round
        return release.as_json()

    def release_latest(self, where: tuple[str, str, str, str]) -> dict[str, Any] | None:
        self.check_env(where[0])
        active = self.active_releases(*where)
        return active[0].as_json() if active else None

    def rollback(self, consumer: Consumer, env: str, raw_id: str, query: dict[str, list[str]]) -> None:
        try:
            release_id = int(raw_id)
        except ValueError:
            raise ApolloError(
                500,
                f"Failed to convert value of type 'java.lang.String' to required type 'long'; "
                f'nested exception is java.lang.NumberFormatException: For input string: "{raw_id}"',
                "org.springframework.web.method.annotation.MethodArgumentTypeMismatchException",
            ) from None
        operator = _required_param(query, "operator")
        if not operator:
            raise ApolloError(400, "Param operator can not be empty")
        self.check_user(operator)
        self.check_env(env)
        release = next((r for r in self.releases.get(env, []) if r.id == release_id), None)
        if release is None:
            raise ApolloError(400, "release not found")
        if not self.granted(consumer, release.app_id, env, release.namespace, "release"):
            raise ApolloError(403, "Forbidden operation. you don't have release permission", ACCESS_DENIED)
        if release.abandoned:
            raise ApolloError(400, "release is not active")
        if len(self.active_releases(env, release.app_id, release.cluster, release.namespace)) < 2:
            raise ApolloError(
                400,
                f"Can't rollback namespace(appId={release.app_id}, clusterName={release.cluster}, "
                f"namespaceName={release.namespace}) because there is only one active release",
            )
        release.abandoned = True
        release.modified_by, release.modified_at = operator, time.time()


def _item_not_found(namespace: Namespace, key: str) -> ApolloError:
    return ApolloError(
        404,
        f"item not found for appId:{namespace.app_id} clusterName:{namespace.cluster} "
        f"namespaceName:{namespace.name} itemKey:{key}",
        NOT_FOUND,
    )


def _required_param(query: dict[str, list[str]], name: str) -> str:
    if name not in query:  # Spring's MissingServletRequestParameterException reaches Apollo's catch-all
        raise ApolloError(
            500,
            f"Required request parameter '{name}' for method parameter type String is not present",
            "org.springframework.web.bind.MissingServletRequestParameterException",
        )
    return query[name][-1]


def decode_key(encoded: str) -> str:
    """An ``encodedItems`` key: standard base64, or else URL-safe (Apollo 3 tries them in this order)."""
    padded = encoded + "=" * (-len(encoded) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    raise ApolloError(400, "Invalid encoded key")


# (methods, pattern over the path after /openapi/v1) → route name; the path variables are the groups.
_SEGMENT = r"([^/]+)"
_NS = rf"envs/{_SEGMENT}/apps/{_SEGMENT}/clusters/{_SEGMENT}/namespaces/{_SEGMENT}"
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"GET"}), re.compile(rf"apps/{_SEGMENT}/envclusters"), "envclusters"),
    (frozenset({"GET"}), re.compile(rf"apps/{_SEGMENT}"), "app"),
    (
        frozenset({"GET"}),
        re.compile(rf"envs/{_SEGMENT}/apps/{_SEGMENT}/clusters/{_SEGMENT}/namespaces"),
        "namespaces",
    ),
    (frozenset({"GET"}), re.compile(_NS), "namespace"),
    (frozenset({"GET"}), re.compile(rf"{_NS}/lock"), "lock"),
    (frozenset({"GET", "POST"}), re.compile(rf"{_NS}/items"), "items"),
    (frozenset({"GET", "PUT", "DELETE"}), re.compile(rf"{_NS}/items/{_SEGMENT}"), "item"),
    (frozenset({"GET", "PUT", "DELETE"}), re.compile(rf"{_NS}/encodedItems/{_SEGMENT}"), "encoded_item"),
    (frozenset({"POST"}), re.compile(rf"{_NS}/releases"), "releases"),
    (frozenset({"GET"}), re.compile(rf"{_NS}/releases/latest"), "latest"),
    (frozenset({"PUT"}), re.compile(rf"envs/{_SEGMENT}/releases/{_SEGMENT}/rollback"), "rollback"),
]
# The writes and the grant each needs (checked by @PreAuthorize before the body is looked at).
_WRITES = {
    ("items", "POST"): "modify",
    ("item", "PUT"): "modify",
    ("item", "DELETE"): "modify",
    ("encoded_item", "PUT"): "modify",
    ("encoded_item", "DELETE"): "modify",
    ("releases", "POST"): "release",
}


class _Handler(DispatchingHandler):
    standin: ApolloStandin
    protocol_version = "HTTP/1.1"
    server_version = "apollo-standin"

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        # Apollo answers null (a never-released namespace's latest release) with 200 and no body at all.
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, body, "application/json;charset=UTF-8", headers)

    def _send_apollo_error(self, status: int, message: str, exception: str, headers=None) -> None:
        now = datetime.now().astimezone()  # Apollo prints a LocalDateTime: the server's wall clock
        self._send_json(
            status,
            {
                "status": status,
                "message": message,
                "timestamp": f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}",
                "exception": exception,
            },
            headers,
        )

    def _send_boot_error(self, status: int, path: str, headers=None) -> None:
        now = datetime.now(UTC)
        self._send_json(
            status,
            {
                "timestamp": f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}+00:00",
                "status": status,
                "error": HTTPStatus(status).phrase,
                "path": path,
            },
            headers,
        )

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        s = self.standin
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        with s.lock:
            s.log_request(method, self.path)
            s._records.append(
                LoggedRequest(
                    method,
                    split.path,
                    query,
                    decoded,
                    self.headers.get("Authorization", ""),
                    self.headers.get("Content-Type", ""),
                )
            )
        fault = s.faults.take(method, self.path)
        if fault is not None and not fault.after:
            self._send_fault(fault.status, split.path, fault.headers())
            return
        try:
            status, payload = self._handle(method, split.path, query, raw)
        except BootError as exc:
            self._send_boot_error(exc.status, split.path)
            return
        except ApolloError as exc:
            self._send_apollo_error(exc.status, exc.message, exc.exception)
            return
        except _Rejected as exc:
            self._send(400, str(exc).encode(), "text/plain;charset=UTF-8")
            return
        if fault is not None:  # served for real, but the answer is lost
            self._send_fault(fault.status, split.path, fault.headers())
            return
        self._send_json(status, payload)

    def _send_fault(self, status: int, path: str, headers: dict[str, str]) -> None:
        if status in (401, 429):
            self._send_boot_error(status, path, headers)
            return
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        self._send_apollo_error(
            status, f"{phrase} (injected by the stand-in)", "java.lang.RuntimeException", headers
        )

    def _handle(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        s = self.standin
        if _REJECTED_ESCAPES.search(path):
            raise _Rejected(
                "The request was rejected because the URL contained a potentially malicious String"
            )
        if not path.startswith("/openapi/"):
            raise BootError(404)
        consumer = s.consumer(self.headers.get("Authorization", "").strip())
        rest = path[len("/openapi/v1/") :].rstrip("/") if path.startswith("/openapi/v1/") else None
        route, args = _match(rest, method) if rest is not None else (None, ())
        if route is None:
            raise BootError(404)
        values = [unquote(a) for a in args]
        right = _WRITES.get((route, method))
        with s.lock:
            if right is not None:
                env, app_id, _cluster, name = values[:4]
                if not s.granted(consumer, app_id, env.strip().upper(), name, right):
                    raise ApolloError(403, "Access is denied", ACCESS_DENIED)
            body = self._body(raw) if right is not None and method in ("POST", "PUT") else None
            status, payload = self._route(route, method, values, query, body, consumer)
            if method != "GET":
                s.save()
            return status, payload

    def _body(self, raw: bytes) -> Any:
        content_type = self.headers.get("Content-Type", "")
        if content_type and "json" not in content_type.lower():
            raise ApolloError(
                400,
                f"Content type '{content_type}' not supported",
                "org.springframework.web.HttpMediaTypeNotSupportedException",
            )
        try:
            return json.loads(raw) if raw else _missing_body()
        except ValueError as exc:
            raise ApolloError(
                500,
                f"JSON parse error: {exc}",
                "org.springframework.http.converter.HttpMessageNotReadableException",
            ) from None

    def _route(
        self,
        route: str,
        method: str,
        values: list[str],
        query: dict[str, list[str]],
        body: Any,
        consumer: Consumer,
    ) -> tuple[int, Any]:
        s = self.standin
        if route == "envclusters":
            return 200, s.env_clusters(values[0])
        if route == "app":
            return 200, s.app_get(values[0])
        if route == "rollback":
            s.rollback(consumer, values[0].strip().upper(), values[1], query)
            return 200, None
        env = values[0].strip().upper()
        if route == "namespaces":
            return 200, s.namespaces_list(env, values[1], values[2])
        where = (env, values[1], values[2], values[3])
        if route == "namespace":
            return 200, s.namespace(*where).as_json()
        if route == "lock":
            return 200, s.lock_get(s.namespace(*where))
        if route == "latest":
            return 200, s.release_latest(where)
        if route == "releases":
            return 200, s.release_create(where, _object(body))
        if route == "items" and method == "GET":
            return 200, s.items_page(s.namespace(*where), query)
        if route == "items":
            return 200, s.item_create(where, _object(body))
        key = values[4] if route == "item" else decode_key(values[4])
        if method == "GET":
            return 200, s.item_get(s.namespace(*where), key)
        if method == "PUT":
            s.item_update(where, key, body, query)
            return 200, None
        s.item_delete(where, key, query)
        return 200, None


class _Rejected(Exception):
    """The servlet container's own refusal, before Apollo's code runs."""


def _match(rest: str, method: str) -> tuple[str | None, tuple[str, ...]]:
    allowed: set[str] = set()
    for methods, pattern, name in _ROUTES:
        found = pattern.fullmatch(rest)
        if found is None:
            continue
        if method in methods:
            return name, found.groups()
        allowed |= methods
    if allowed:
        raise ApolloError(
            400,
            f"Request method '{method}' not supported",
            "org.springframework.web.HttpRequestMethodNotSupportedException",
        )
    return None, ()


def _missing_body() -> Any:
    raise ApolloError(
        500,
        "Required request body is missing",
        "org.springframework.http.converter.HttpMessageNotReadableException",
    )


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApolloError(
            500,
            "JSON parse error: the request body is not a JSON object",
            "org.springframework.http.converter.HttpMessageNotReadableException",
        )
    return body
