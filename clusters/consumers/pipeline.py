"""The live tail of an environment's log-pipeline lines over a WebSocket: the socket joins the environment's
channel-layer group and counts as a viewer; the environment's one Celery task chain
(clusters.services.pipeline_tail) reads Kafka and sends the lines to the group. No thread and no Kafka
connection here, however many sockets are open.

Messages to the browser: {"type": "pipeline-started"}, {"type": "pipeline-lines", "lines": [...],
"skipped": n} (each line as clusters.selectors.pipeline_logs.parse_line shapes it), {"type":
"pipeline-error", "message", "final"?} (final: the socket closes and reopening cannot help: no pipeline,
no Redis, access lost). Access is the environment page's: environment_get, which pod logs use too, checked
again at every viewer refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _

from clusters.selectors import environments as env_selectors
from clusters.selectors import pipeline_logs
from clusters.services import pipeline_tail
from opsportal.metrics import CountedWebSocket

logger = logging.getLogger(__name__)


class PipelineTailConsumer(CountedWebSocket, AsyncJsonWebsocketConsumer):
    metrics_consumer = "pipeline"

    async def ended(self) -> None:
        # However the socket ended, it stops refreshing and stops counting as a viewer.
        await self._leave()

    async def connect(self):
        self.refresher: asyncio.Task | None = None
        self.environment_id: int | None = None
        user = self.scope.get("user")
        kwargs = self.scope["url_route"]["kwargs"]
        if user is None or not user.is_authenticated:
            await self.close()
            return
        try:
            ref = await database_sync_to_async(env_selectors.environment_get)(
                user=user, name=kwargs["name"], environment=kwargs["environment"]
            )
        except (Http404, PermissionDenied):
            await self.close()  # before accepting: nothing is revealed
            return
        await self.accept()
        if not pipeline_tail.tail_available():
            await self.send_json(
                {
                    "type": "pipeline-error",
                    "message": _(
                        "The live tail needs the portal's Redis (REDIS_URL); the search still works."
                    ),
                    "final": True,
                }
            )
            await self.close()
            return
        if await database_sync_to_async(pipeline_logs.pipeline_of)(ref) is None:
            await self.send_json(
                {
                    "type": "pipeline-error",
                    "message": pipeline_logs.not_configured_message(ref),
                    "final": True,
                }
            )
            await self.close()
            return
        self.environment_id = ref.environment.pk
        self.ref_name, self.ref_environment = kwargs["name"], kwargs["environment"]
        await self.channel_layer.group_add(pipeline_tail.group_name(self.environment_id), self.channel_name)
        try:
            await self._refresh()
        except Exception:  # Redis or the broker away: the page retries with backoff
            logger.warning("pipeline tail: could not start", exc_info=True)
            await self.send_json({"type": "pipeline-error", "message": _("The live tail could not start.")})
            await self.close()
            return
        self.refresher = asyncio.create_task(self._keep_viewing())
        await self.send_json({"type": "pipeline-started"})

    async def _refresh(self) -> None:
        await database_sync_to_async(pipeline_tail.viewer_refresh)(
            environment_id=self.environment_id, viewer=self.channel_name
        )

    async def _keep_viewing(self) -> None:
        period = max(1.0, settings.LOG_PIPELINE_TAIL_VIEWER_SECONDS / 3)
        while True:
            await asyncio.sleep(period)
            # Someone removed from the project since the socket opened stops seeing its lines.
            try:
                await database_sync_to_async(env_selectors.environment_get)(
                    user=self.scope["user"], name=self.ref_name, environment=self.ref_environment
                )
            except (Http404, PermissionDenied):
                self.refresher = None  # this task: _leave must not cancel and await itself
                await self._leave()
                await self.send_json(
                    {"type": "pipeline-error", "message": _("You no longer see this project."), "final": True}
                )
                await self.close()
                return
            try:
                await self._refresh()
            except Exception:  # Redis away for a moment: try again next period
                logger.warning("pipeline tail: viewer refresh failed", exc_info=True)

    async def _leave(self) -> None:
        refresher, self.refresher = getattr(self, "refresher", None), None
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await refresher
        environment_id, self.environment_id = getattr(self, "environment_id", None), None
        if environment_id is None:
            return
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(
                pipeline_tail.group_name(environment_id), self.channel_name
            )
        try:
            await database_sync_to_async(pipeline_tail.viewer_leave)(
                environment_id=environment_id, viewer=self.channel_name
            )
        except Exception:  # it stops counting anyway when its score passes
            logger.warning("pipeline tail: could not remove a viewer", exc_info=True)

    async def receive_json(self, content, **kwargs):
        return  # the browser only listens

    async def pipeline_lines(self, event: dict) -> None:
        await self.send_json(
            {"type": "pipeline-lines", "lines": event["lines"], "skipped": event.get("skipped", 0)}
        )

    async def pipeline_error(self, event: dict) -> None:
        await self.send_json({"type": "pipeline-error", "message": event["message"]})

    async def disconnect(self, code):
        await self._leave()
