"""The environment page's live feed: Kubernetes watches pushed over a WebSocket, and log following.

While a socket is open, one thread per object kind lists and then watches it (pods, the Deployment,
the HPA, the Service and the namespace's events), re-listing after 410 Gone or a dropped stream, and
sends the current state as small JSON messages: {"type": "pods", "items": [...]}, {"type":
"deployment", "item": {...}}, and so on. The browser may also ask to follow one container's log
({"type": "follow", "pod", "container", "previous", "tail"}; {"type": "unfollow"} stops it).
Disconnecting stops every watch: blocked reads are shut down and the threads joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from itertools import count

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from clusters.selectors import environments as env_selectors
from integrations.errors import Conflict, IntegrationError

logger = logging.getLogger(__name__)

THREAD_PREFIX = "opsportal-env"
WATCH_SECONDS = 50  # the server ends each watch after this; the thread then watches again
JOIN_SECONDS = 5
MAX_TAIL = 5000
_ids = count(1)


def live_threads() -> list[threading.Thread]:
    """The watch and log threads alive in this process (the tests check none outlive a socket)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


class _Worker(threading.Thread):
    """A thread whose blocking read can be ended from outside with ``halt()``."""

    def __init__(self, name: str, emit: Callable[[dict], None]) -> None:
        super().__init__(name=f"{THREAD_PREFIX}-{name}-{next(_ids)}", daemon=True)
        self.emit = emit
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


class _Watcher(_Worker):
    """List, then watch from the list's resourceVersion; send the whole (small) state on each change."""

    def __init__(self, ref, kind: str, emit, *, message: str, single: bool, **selectors) -> None:
        super().__init__(kind.lower(), emit)
        self.ref, self.kind, self.message, self.single, self.selectors = ref, kind, message, single, selectors
        self.items: dict[str, dict] = {}

    def snapshot(self) -> dict:
        ref = self.ref
        if self.kind == "Pod":
            pods = sorted(
                (env_selectors.pod_summary(p) for p in self.items.values()), key=lambda p: p["name"]
            )
            return {"type": "pods", "items": pods}
        if self.kind == "Event":
            return {"type": "events", "items": env_selectors.events_summary(ref, list(self.items.values()))}
        summarize = {
            "Deployment": env_selectors.deployment_summary,
            "HorizontalPodAutoscaler": env_selectors.hpa_summary,
            "Service": env_selectors.service_summary,
        }[self.kind]
        return {"type": self.message, "item": summarize(self.items.get(ref.name))}

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                with self.ref.client() as client:
                    self._list_and_watch(client)
                backoff = 1.0
            except IntegrationError as exc:
                if self.stopping.is_set():
                    return
                self.emit({"type": "error", "source": self.message, "message": str(exc)})
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:
                if self.stopping.is_set():
                    return
                logger.exception("Watching %s in %s failed", self.kind, self.ref.namespace)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _list_and_watch(self, client) -> None:
        listing = client.list_objects(self.kind, self.ref.namespace, **self.selectors)
        self.items = {(o.get("metadata") or {}).get("name", ""): o for o in listing.get("items") or []}
        self.emit(self.snapshot())
        version = (listing.get("metadata") or {}).get("resourceVersion", "")
        while not self.stopping.is_set():
            try:
                for event in client.watch(
                    self.kind,
                    self.ref.namespace,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    on_response=self.hold,
                    **self.selectors,
                ):
                    if self.stopping.is_set():
                        return
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    kind = event.get("type")
                    if kind in ("ADDED", "MODIFIED"):
                        self.items[meta.get("name", "")] = obj
                    elif kind == "DELETED":
                        self.items.pop(meta.get("name", ""), None)
                    else:
                        continue  # BOOKMARK: only the resourceVersion moves on
                    self.emit(self.snapshot())
            except Conflict as exc:
                if exc.status == 410:
                    return  # too old: the caller lists again
                raise


class _LogFollower(_Worker):
    def __init__(self, ref, emit, *, pod: str, container: str, previous: bool, tail: int | None) -> None:
        super().__init__("log", emit)
        self.ref, self.pod, self.container, self.previous, self.tail = ref, pod, container, previous, tail

    def run(self) -> None:
        head = {"pod": self.pod, "container": self.container}
        try:
            with self.ref.client() as client:
                if not env_selectors.is_own_pod(self.ref, client.get("Pod", self.ref.namespace, self.pod)):
                    self.emit(
                        {"type": "log-error", **head, "message": f"No pod {self.pod} in this environment."}
                    )
                    return
                self.emit({"type": "log-start", **head, "previous": self.previous})
                for line in client.follow_pod_log(
                    self.ref.namespace,
                    self.pod,
                    container=self.container,
                    tail_lines=self.tail,
                    previous=self.previous,
                    on_response=self.hold,
                ):
                    if self.stopping.is_set():
                        return
                    self.emit({"type": "log", **head, "line": line})
        except IntegrationError as exc:
            if not self.stopping.is_set():
                self.emit({"type": "log-error", **head, "message": exc.message})
            return
        if not self.stopping.is_set():
            self.emit({"type": "log-end", **head})


def _join(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.halt()
    for worker in workers:
        worker.join(JOIN_SECONDS)
        if worker.is_alive():
            logger.warning("Thread %s did not stop within %ss", worker.name, JOIN_SECONDS)


class EnvironmentConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.workers: list[_Worker] = []
        self.follower: _LogFollower | None = None
        self.sender: asyncio.Task | None = None
        user = self.scope.get("user")
        kwargs = self.scope["url_route"]["kwargs"]
        if user is None or not user.is_authenticated:
            await self.close()
            return
        try:
            self.ref = await database_sync_to_async(env_selectors.environment_get)(
                user=user, name=kwargs["name"], environment=kwargs["environment"]
            )
        except (Http404, PermissionDenied):
            await self.close()  # before accepting: the handshake is refused, nothing is revealed
            return
        await self.accept()
        loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

        def emit(message: dict) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the socket closed meanwhile
                loop.call_soon_threadsafe(self.queue.put_nowait, message)

        self.emit = emit
        self.sender = asyncio.create_task(self._send_loop())
        ref = self.ref
        by_name = f"metadata.name={ref.name}"
        self.workers = [
            _Watcher(ref, "Pod", emit, message="pods", single=False, label_selector=ref.label_selector),
            _Watcher(ref, "Deployment", emit, message="deployment", single=True, field_selector=by_name),
            _Watcher(
                ref, "HorizontalPodAutoscaler", emit, message="hpa", single=True, field_selector=by_name
            ),
            _Watcher(ref, "Service", emit, message="service", single=True, field_selector=by_name),
            _Watcher(ref, "Event", emit, message="events", single=False),
        ]
        for worker in self.workers:
            worker.start()

    async def _send_loop(self) -> None:
        while True:
            message = await self.queue.get()
            await self.send_json(message)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return
        if content.get("type") == "unfollow":
            await self._stop_follower()
        elif content.get("type") == "follow":
            pod, container = content.get("pod"), content.get("container") or ""
            tail = content.get("tail", 200)
            if not isinstance(pod, str) or not pod or not isinstance(container, str):
                await self.send_json({"type": "log-error", "message": "follow needs a pod name."})
                return
            if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
                await self.send_json({"type": "log-error", "message": "tail must be a number of lines."})
                return
            await self._stop_follower()
            self.follower = _LogFollower(
                self.ref,
                self.emit,
                pod=pod,
                container=container,
                previous=bool(content.get("previous")),
                tail=min(tail, MAX_TAIL) if tail is not None else None,
            )
            self.follower.start()

    async def _stop_follower(self) -> None:
        if self.follower is not None:
            follower, self.follower = self.follower, None
            await asyncio.to_thread(_join, [follower])

    async def disconnect(self, code):
        workers = list(getattr(self, "workers", []))
        if getattr(self, "follower", None) is not None:
            workers.append(self.follower)
            self.follower = None
        if workers:
            await asyncio.to_thread(_join, workers)
        self.workers = []
        if getattr(self, "sender", None) is not None:
            self.sender.cancel()
