"""The browser end of the web terminal: ws/terminal/<project>/<environment>/?pod=…&container=…&cols=…&rows=…

Messages from the browser are JSON: ``{"type": "input", "data": "…"}`` and
``{"type": "resize", "cols": N, "rows": N}``. Terminal output goes to the browser as binary frames;
notices are JSON ``{"type": "error" | "ready" | "exit", …}``. A socket for someone who may not see the
project is refused before the handshake; a member lacking the right gets an ``error`` and a close code.
"""

import asyncio
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http import Http404

from clusters.models import Cluster
from clusters.services import terminal
from opsportal.metrics import CountedWebSocket
from projects.access import can

logger = logging.getLogger(__name__)
CLOSE_SIGNED_OUT = 4401
SEND_TIMEOUT = 30


def _size(value: str | None, default: int, limit: int) -> int:
    try:
        return max(1, min(int(value), limit))
    except (TypeError, ValueError):
        return default


class TerminalConsumer(CountedWebSocket, AsyncJsonWebsocketConsumer):
    metrics_consumer = "terminal"
    bridge: terminal.TerminalBridge | None = None
    grant_watch: asyncio.Task | None = None

    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        pod = (query.get("pod") or [""])[0]
        container = (query.get("container") or [""])[0]
        cols = _size((query.get("cols") or [None])[0], 80, terminal.MAX_COLS)
        rows = _size((query.get("rows") or [None])[0], 24, terminal.MAX_ROWS)
        client = self.scope.get("client") or [None]
        try:
            # Reads the pod from the cluster: not in the shared database thread.
            target = await database_sync_to_async(terminal.terminal_target, thread_sensitive=False)(
                self.user,
                project_name=kwargs["name"],
                environment=kwargs["environment"],
                pod=pod,
                container=container,
            )
            session = await database_sync_to_async(terminal.session_open)(
                user=self.user, target=target, width=cols, height=rows, remote_addr=client[0]
            )
            cluster = await database_sync_to_async(Cluster.objects.get)(pk=target.cluster_id)
        except Http404:
            await self.close()  # not a member: refuse the handshake, reveal nothing
            return
        except terminal.TerminalRefused as exc:
            await self.accept()
            await self.send_json({"type": "error", "message": exc.message})
            await self.close(code=exc.code)
            return
        await self.accept()
        loop = asyncio.get_running_loop()

        def send_output(data: bytes) -> None:
            asyncio.run_coroutine_threadsafe(self.send(bytes_data=data), loop).result(SEND_TIMEOUT)

        def on_end(reason: str) -> None:
            asyncio.run_coroutine_threadsafe(self._ended(reason), loop)

        self.bridge = terminal.TerminalBridge(
            session=session,
            cluster=cluster,
            send_output=send_output,
            on_end=on_end,
            idle_seconds=settings.TERMINAL_IDLE_SECONDS,
        )
        self.bridge.start()
        await self.send_json({"type": "ready", "session": session.pk, "container": target.container})
        self.grant_watch = asyncio.create_task(self._watch_access(target))

    async def _watch_access(self, target: terminal.Target) -> None:
        """Close the session once its right lapses (a prod grant expiring or revoked, a member removed):
        the right is asked again every TERMINAL_GRANT_RECHECK_SECONDS, not only at connect."""
        action = terminal.terminal_action(target.environment)
        while True:
            await asyncio.sleep(settings.TERMINAL_GRANT_RECHECK_SECONDS)
            if self.bridge is None:
                return
            allowed = await database_sync_to_async(can)(self.user, action, target.project)
            if not allowed:
                self.bridge.stop("access lapsed (grant expired or revoked)")
                return

    async def _ended(self, reason: str) -> None:
        try:
            await self.send_json({"type": "exit", "reason": reason})
            await self.close(code=1000)
        except Exception:  # the browser is already gone
            logger.debug("terminal socket already closed", exc_info=True)

    async def disconnect(self, code):
        if self.grant_watch is not None:
            self.grant_watch.cancel()
        if self.bridge is not None:
            self.bridge.stop("browser closed")
            if not await asyncio.to_thread(self.bridge.join, 15):
                logger.warning("Terminal session %s did not stop in time", self.bridge.session_id)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if bytes_data is not None and self.bridge is not None:
            self.bridge.write(bytes_data.decode(errors="replace"))
            return
        try:
            content = await self.decode_json(text_data) if text_data else None
        except ValueError:
            content = None
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if self.bridge is None or not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "input" and isinstance(content.get("data"), str):
            self.bridge.write(content["data"])
        elif kind == "resize":
            cols = _size(content.get("cols"), 0, terminal.MAX_COLS)
            rows = _size(content.get("rows"), 0, terminal.MAX_ROWS)
            if cols and rows:
                self.bridge.resize(cols, rows)
        else:
            await self.send_json({"type": "error", "message": "Send input or resize messages."})
