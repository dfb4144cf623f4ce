"""The environment page's live feed: shared Kubernetes watches pushed over a WebSocket, and log following.

A socket joins the process's watch hub (clusters.consumers.watch_hub) for its environment's pods, Deployment,
HPA, Service and events, and its channel joins one group per kind; the hub's single watch per
(cluster, namespace, kind) sends each environment's current state there as small JSON messages:
{"type": "pods", "items": [...]}, {"type": "deployment", "item": {...}}, and so on. Opening a page
starts no thread unless nobody was looking at that environment yet. The browser may also ask to follow
one container's log ({"type": "follow", "pod", "container", "previous", "tail"}; {"type": "unfollow"}
stops it): one thread per followed log, at most ENVIRONMENT_LOG_FOLLOWERS_MAX per process.
Disconnecting leaves the hub (the last viewer of a key stops its watch) and stops the log follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _

from clusters.consumers import watch_hub
from clusters.consumers.watch_hub import THREAD_PREFIX, Worker
from clusters.selectors import environments as env_selectors
from integrations.errors import IntegrationError
from opsportal.metrics import CountedWebSocket

logger = logging.getLogger(__name__)

JOIN_SECONDS = 5
MAX_TAIL = 5000
_followers = threading.BoundedSemaphore(1)  # replaced on first use with the configured size
_followers_size = 0
_followers_lock = threading.Lock()


def live_threads() -> list[threading.Thread]:
    """The watch and log threads alive in this process (the tests check none outlive a socket)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def _follower_slots() -> threading.BoundedSemaphore:
    global _followers, _followers_size
    with _followers_lock:
        if _followers_size != settings.ENVIRONMENT_LOG_FOLLOWERS_MAX:
            _followers_size = settings.ENVIRONMENT_LOG_FOLLOWERS_MAX
            _followers = threading.BoundedSemaphore(_followers_size)
        return _followers


class _LogFollower(Worker):
    def __init__(
        self,
        ref,
        emit: Callable[[dict], None],
        *,
        slots: threading.BoundedSemaphore,
        pod: str,
        container: str,
        previous: bool,
        tail: int | None,
    ) -> None:
        super().__init__("log")
        self.emit = emit
        self.slots = slots  # acquired by the consumer; released when the thread ends
        self.ref, self.pod, self.container, self.previous, self.tail = ref, pod, container, previous, tail

    def run(self) -> None:
        try:
            self._follow()
        finally:
            self.slots.release()

    def _follow(self) -> None:
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


def _join(workers: list[Worker]) -> None:
    for worker in workers:
        worker.halt()
    for worker in workers:
        worker.join(JOIN_SECONDS)
        if worker.is_alive():
            logger.warning("Thread %s did not stop within %ss", worker.name, JOIN_SECONDS)


class EnvironmentConsumer(CountedWebSocket, AsyncJsonWebsocketConsumer):
    metrics_consumer = "environment"

    async def ended(self) -> None:
        # Whatever ended this socket (disconnect, an exception, Daphne cancelling it), it stops counting
        # as a viewer and its log follower stops; otherwise they would run until the process ends.
        self._leave_hub()
        if getattr(self, "follower", None) is not None:
            self.follower.halt()
        if getattr(self, "sender", None) is not None:
            self.sender.cancel()

    def _leave_hub(self) -> None:
        if getattr(self, "joined", False):
            self.joined = False
            watch_hub.hub.leave(self.ref, self.channel_name)

    async def connect(self):
        self.follower: _LogFollower | None = None
        self.sender: asyncio.Task | None = None
        self.joined = False
        self.seen: dict[str, int] = {}  # the sequence number last sent, per message type
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
        # Groups first, then the hub's current state: a change in between arrives twice, never not at all.
        for group in watch_hub.groups_for(self.ref):
            await self.channel_layer.group_add(group, self.channel_name)
        try:
            current = watch_hub.hub.join(self.ref, self.channel_name)
        except watch_hub.HubFull as exc:
            await self.send_json({"type": "error", "source": "live", "message": exc.message})
            return
        self.joined = True
        for update in current:
            await self.env_update(update)

    async def env_update(self, update: dict) -> None:
        """A state message from the hub, unless the socket already sent a newer one of its type."""
        message = update["message"]
        if update["seq"] <= self.seen.get(message["type"], 0):
            return
        self.seen[message["type"]] = update["seq"]
        try:
            await self.send_json(message)
        except Exception:  # the browser left while this was on its way; disconnect follows
            logger.debug("environment update not sent: socket closed", exc_info=True)

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
            slots = _follower_slots()
            if not slots.acquire(blocking=False):
                await self.send_json(
                    {
                        "type": "log-error",
                        "pod": pod,
                        "container": container,
                        "message": _(
                            "This server already follows %(n)s logs, its limit; try again in a minute."
                        )
                        % {"n": settings.ENVIRONMENT_LOG_FOLLOWERS_MAX},
                    }
                )
                return
            self.follower = _LogFollower(
                self.ref,
                self.emit,
                slots=slots,
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
        ref = getattr(self, "ref", None)
        if ref is not None:
            self._leave_hub()
            for group in watch_hub.groups_for(ref):
                await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "follower", None) is not None:
            follower, self.follower = self.follower, None
            await asyncio.to_thread(_join, [follower])
        if getattr(self, "sender", None) is not None:
            self.sender.cancel()
