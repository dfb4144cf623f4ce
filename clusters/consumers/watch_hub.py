"""One Kubernetes watch per (cluster, namespace, kind) in each web process, shared by every viewer.

An environment page needs five kinds of objects: its pods, Deployment, HPA, Service and the namespace's
events. Each environment socket *joins* the hub for those five keys. The first viewer of a key starts
one thread (the Kubernetes client is synchronous) that lists the kind in the namespace and then
watches it from the list's resourceVersion, listing again after 410 Gone or a dropped stream. The last
viewer to leave stops it: the blocked read is shut down and the thread ends. So a process runs at most
one watch per key however many pages are open, and at most ``ENVIRONMENT_WATCH_MAX_KEYS`` keys.

On every change the thread works out what each environment watching the key sees (pods carrying its
labels, the objects named after its project, events about them) and, when that changed, sends it to a
channel group for that (key, environment) pair. Viewers join the group, so the channel layer does the
fan-out, in-memory under ``make run`` and through Redis in production. Group names carry a token of
this process: with several Daphne processes each has its own watches and feeds only its own sockets,
so no viewer gets a message twice. Every message carries a process-wide sequence number; a socket
drops one older than what it already sent (the snapshot a joiner gets directly can overtake a
group message), so a page never goes back to an older state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass, field
from itertools import count

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.translation import gettext as _

from clusters.selectors import environments as env_selectors
from integrations.errors import Conflict, IntegrationError

logger = logging.getLogger(__name__)

THREAD_PREFIX = "opsportal-env"
WATCH_SECONDS = 50  # the server ends each watch after this; the thread then watches again
SEND_SECONDS = 10
MESSAGE_TYPE = "env.update"  # handled by EnvironmentConsumer.env_update
# The kinds an environment page shows, and the message type the browser knows each by.
KINDS = {
    "Pod": "pods",
    "Deployment": "deployment",
    "HorizontalPodAutoscaler": "hpa",
    "Service": "service",
    "Event": "events",
}
_PROCESS = uuid.uuid4().hex[:12]
_ids = count(1)
_seq = count(1)


class HubFull(Exception):
    """This process already watches as many keys as it may; ``message`` says so to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Worker(threading.Thread):
    """A thread whose blocking read can be ended from outside with ``halt()``."""

    def __init__(self, name: str) -> None:
        super().__init__(name=f"{THREAD_PREFIX}-{name}-{next(_ids)}", daemon=True)
        self.stopping = threading.Event()
        self._response = None
        self._lock = threading.Lock()

    def hold(self, response) -> None:
        with self._lock:
            self._response = response
            if self.stopping.is_set():
                self._shutdown()

    def _shutdown(self) -> None:
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.shutdown()

    def halt(self) -> None:
        self.stopping.set()
        with self._lock:
            self._shutdown()


@dataclass(frozen=True)
class WatchKey:
    cluster_id: int
    namespace: str
    kind: str


def keys_for(ref: env_selectors.EnvironmentRef) -> list[WatchKey]:
    return [WatchKey(ref.environment.cluster_id, ref.namespace, kind) for kind in KINDS]


def group_name(key: WatchKey, environment_id: int) -> str:
    digest = hashlib.sha256(f"{key.cluster_id}/{key.namespace}/{key.kind}".encode()).hexdigest()[:16]
    return f"envwatch.{_PROCESS}.{digest}.{environment_id}"


def groups_for(ref: env_selectors.EnvironmentRef) -> list[str]:
    return [group_name(key, ref.environment.pk) for key in keys_for(ref)]


def _own(ref: env_selectors.EnvironmentRef, kind: str, items: dict[str, dict]) -> list[dict]:
    """The objects of one kind in the namespace that belong to this environment."""
    if kind == "Pod":
        return [o for o in items.values() if env_selectors.is_own_pod(ref, o)]
    if kind == "Event":
        return [o for o in items.values() if env_selectors.is_own_event(ref, o)]
    obj = items.get(ref.name)  # Deployment, HPA and Service are named after the project
    return [obj] if obj is not None else []


def _message(ref: env_selectors.EnvironmentRef, kind: str, own: list[dict]) -> dict:
    if kind == "Pod":
        pods = sorted((env_selectors.pod_summary(p) for p in own), key=lambda p: p["name"])
        return {"type": "pods", "items": pods}
    if kind == "Event":
        return {
            "type": "events",
            "items": env_selectors.events_summary(ref, own),
            "warnings": env_selectors.pod_warnings(ref, own),
        }
    summarize = {
        "Deployment": env_selectors.deployment_summary,
        "HorizontalPodAutoscaler": env_selectors.hpa_summary,
        "Service": env_selectors.service_summary,
    }[kind]
    return {"type": KINDS[kind], "item": summarize(own[0] if own else None)}


def _fingerprint(own: list[dict]) -> tuple:
    return tuple(
        sorted(
            ((o.get("metadata") or {}).get("name", ""), (o.get("metadata") or {}).get("resourceVersion", ""))
            for o in own
        )
    )


@dataclass
class _View:
    """One environment watching a key: its ref, its sockets, and what it was last sent."""

    ref: env_selectors.EnvironmentRef
    channels: set[str] = field(default_factory=set)
    fingerprint: tuple | None = None
    last: dict | None = None  # the last message sent to its group, with its sequence number


class _Watcher(Worker):
    """List, then watch from the list's resourceVersion; tell the hub about every change."""

    def __init__(self, hub: WatchHub, key: WatchKey, cluster) -> None:
        super().__init__(key.kind.lower())
        self.hub, self.key, self.cluster = hub, key, cluster
        self.items: dict[str, dict] = {}
        self.listed = False

    def run(self) -> None:
        from integrations.kubernetes.client import KubeClient

        backoff = 1.0
        while not self.stopping.is_set():
            try:
                with KubeClient.from_cluster(self.cluster) as client:
                    self._list_and_watch(client)
                backoff = 1.0
            except IntegrationError as exc:
                if self.stopping.is_set():
                    return
                self.hub.broadcast(
                    self, {"type": "error", "source": KINDS[self.key.kind], "message": str(exc)}
                )
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:
                if self.stopping.is_set():
                    return
                logger.exception("Watching %s in %s failed", self.key.kind, self.key.namespace)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _list_and_watch(self, client) -> None:
        listing = client.list_objects(self.key.kind, self.key.namespace)
        items = {(o.get("metadata") or {}).get("name", ""): o for o in listing.get("items") or []}
        self.hub.changed(self, items, listed=True)
        version = (listing.get("metadata") or {}).get("resourceVersion", "")
        while not self.stopping.is_set():
            try:
                for event in client.watch(
                    self.key.kind,
                    self.key.namespace,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    on_response=self.hold,
                ):
                    if self.stopping.is_set():
                        return
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    kind = event.get("type")
                    if kind not in ("ADDED", "MODIFIED", "DELETED"):
                        continue  # BOOKMARK: only the resourceVersion moves on
                    items = dict(self.items)
                    if kind == "DELETED":
                        items.pop(meta.get("name", ""), None)
                    else:
                        items[meta.get("name", "")] = obj
                    self.hub.changed(self, items)
            except Conflict as exc:
                if exc.status == 410:
                    return  # too old: the caller lists again
                raise


@dataclass
class _Entry:
    watcher: _Watcher
    loop: asyncio.AbstractEventLoop
    views: dict[int, _View] = field(default_factory=dict)  # by ProjectEnvironment id


class WatchHub:
    """The process's watches, keyed by (cluster, namespace, kind) and counted by viewer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[WatchKey, _Entry] = {}

    # -- called from the event loop by the consumer ---------------------------------------------------

    def join(self, ref: env_selectors.EnvironmentRef, channel: str) -> list[dict]:
        """Count one more viewer of ref's keys, starting the watches not running yet.

        Returns the messages the keys already know for ref (the viewer's group only gets changes).
        Raises HubFull, joining nothing, when the new keys would pass ENVIRONMENT_WATCH_MAX_KEYS."""
        loop = asyncio.get_running_loop()
        current: list[dict] = []
        started: list[_Watcher] = []
        with self._lock:
            keys = keys_for(ref)
            new = [key for key in keys if key not in self._entries]
            limit = settings.ENVIRONMENT_WATCH_MAX_KEYS
            if new and len(self._entries) + len(new) > limit:
                raise HubFull(
                    _(
                        "This server already follows %(n)s object kinds, its limit; the page shows the "
                        "state as loaded. Reload later for live updates."
                    )
                    % {"n": limit}
                )
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    watcher = _Watcher(self, key, ref.environment.cluster)
                    entry = self._entries[key] = _Entry(watcher=watcher, loop=loop)
                    started.append(watcher)
                entry.loop = loop  # tests run each case on its own loop; Daphne has one
                view = entry.views.setdefault(ref.environment.pk, _View(ref=ref))
                if entry.watcher.listed:
                    view.fingerprint = None  # made afresh: a pod's age in the last message has moved on
                    self._refresh(key, view, entry.watcher.items)
                view.channels.add(channel)
                if view.last is not None:
                    current.append(view.last)
        for watcher in started:
            watcher.start()
        return current

    def leave(self, ref: env_selectors.EnvironmentRef, channel: str) -> None:
        """Count one viewer less; a key nobody watches any more stops its watch."""
        stopped: list[_Watcher] = []
        with self._lock:
            for key in keys_for(ref):
                entry = self._entries.get(key)
                view = entry.views.get(ref.environment.pk) if entry else None
                if view is None:
                    continue
                view.channels.discard(channel)
                if not view.channels:
                    del entry.views[ref.environment.pk]
                if not entry.views:
                    del self._entries[key]
                    stopped.append(entry.watcher)
        for watcher in stopped:
            watcher.halt()  # ends the blocked read; the thread returns on its own

    def watch_count(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- called from the watch threads ---------------------------------------------------------------

    def _refresh(self, key: WatchKey, view: _View, items: dict[str, dict]) -> dict | None:
        """The view's new message when its objects changed (lock held), else None."""
        own = _own(view.ref, key.kind, items)
        fingerprint = _fingerprint(own)
        if fingerprint == view.fingerprint:
            return None
        view.fingerprint = fingerprint
        view.last = {"type": MESSAGE_TYPE, "seq": next(_seq), "message": _message(view.ref, key.kind, own)}
        return view.last

    def changed(self, watcher: _Watcher, items: dict[str, dict], *, listed: bool = False) -> None:
        outgoing: list[tuple[str, dict]] = []
        with self._lock:
            watcher.items = items
            watcher.listed = watcher.listed or listed
            entry = self._entries.get(watcher.key)
            if entry is None or entry.watcher is not watcher or watcher.stopping.is_set():
                return
            if listed:  # a fresh list: send it even where nothing changed, it also clears an error
                for view in entry.views.values():
                    view.fingerprint = None
            for environment_id, view in entry.views.items():
                message = self._refresh(watcher.key, view, items)
                if message is not None:
                    outgoing.append((group_name(watcher.key, environment_id), message))
            loop = entry.loop
        self._send(loop, outgoing)

    def broadcast(self, watcher: _Watcher, message: dict) -> None:
        with self._lock:
            entry = self._entries.get(watcher.key)
            if entry is None or entry.watcher is not watcher:
                return
            wrapped = {"type": MESSAGE_TYPE, "seq": next(_seq), "message": message}
            outgoing = [(group_name(watcher.key, environment_id), wrapped) for environment_id in entry.views]
            loop = entry.loop
        self._send(loop, outgoing)

    @staticmethod
    def _send(loop: asyncio.AbstractEventLoop, outgoing: list[tuple[str, dict]]) -> None:
        if not outgoing:
            return
        layer = get_channel_layer()

        async def send_all():
            for group, message in outgoing:
                await layer.group_send(group, message)

        try:
            # Waiting for the send keeps a slow channel layer from piling up messages behind it.
            asyncio.run_coroutine_threadsafe(send_all(), loop).result(SEND_SECONDS)
        except RuntimeError:
            pass  # the loop is closed: the process is shutting down
        except Exception:
            logger.warning("Sending environment updates to %s groups failed", len(outgoing), exc_info=True)


hub = WatchHub()
