import asyncio
import logging
import time
from importlib import import_module

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from observability import events
from observability.revocation import session_fingerprint, user_sockets_group
from opsportal.metrics import CountedWebSocket

logger = logging.getLogger(__name__)
MAX_STREAMS = 20


class LiveEventsConsumer(CountedWebSocket, AsyncJsonWebsocketConsumer):
    """Delivers live events to the browser.

    The browser subscribes to streams with the last sequence number it has seen; missed events are
    replayed from the database, then live ones follow, each delivered once and in order.
    """

    metrics_consumer = "live_events"

    async def connect(self):
        self.user = self.scope.get("user")
        self.seen: dict[str, int] = {}
        self.poller: asyncio.Task | None = None
        # When each subscribed stream's access was last confirmed (monotonic seconds).
        self.confirmed_at: dict[str, float] = {}
        self.closed = False
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            # Accept, then close with a code the page understands as "signed out: don't retry".
            await self._close_signed_out()
            return
        # Removal from a project, logout and deactivation reach this group (observability.revocation).
        await self.channel_layer.group_add(user_sockets_group(self.user.pk), self.channel_name)
        if settings.LIVE_EVENTS_POLL_SECONDS > 0:
            self.poller = asyncio.create_task(self._poll(settings.LIVE_EVENTS_POLL_SECONDS))

    async def disconnect(self, code):
        if self.poller is not None:
            self.poller.cancel()
        for stream in list(getattr(self, "seen", {})):
            await self.channel_layer.group_discard(events.group_name(stream), self.channel_name)
        user = getattr(self, "user", None)
        if user is not None and user.is_authenticated:
            await self.channel_layer.group_discard(user_sockets_group(user.pk), self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            content = await self.decode_json(text_data) if text_data else None
        except ValueError:
            content = None
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or content.get("type") != "subscribe":
            await self.send_json(
                {"type": "error", "error": "Unknown message; send {type: 'subscribe', ...}."}
            )
            return
        stream = content.get("stream")
        last_seq = content.get("last_seq", 0)
        if not isinstance(stream, str) or not isinstance(last_seq, int) or last_seq < 0:
            await self.send_json(
                {"type": "error", "error": "subscribe needs a stream name and last_seq >= 0."}
            )
            return
        if stream not in self.seen and len(self.seen) >= MAX_STREAMS:
            await self.send_json({"type": "error", "stream": stream, "error": "Too many subscriptions."})
            return
        if not await database_sync_to_async(events.stream_allowed)(self.user, stream):
            # Same answer for "does not exist" and "not yours".
            await self.send_json({"type": "error", "stream": stream, "error": "not found"})
            return
        await self.channel_layer.group_add(events.group_name(stream), self.channel_name)
        self.seen[stream] = last_seq
        self.confirmed_at[stream] = time.monotonic()
        await self._catch_up({stream: last_seq})
        await self.send_json({"type": "subscribed", "stream": stream, "seq": self.seen[stream]})

    async def access_changed(self, message):
        """The user's membership, account or session changed: re-check every stream now."""
        session = self.scope.get("session")
        ended = message.get("ended_session")
        if ended and session is not None and ended == session_fingerprint(session.session_key):
            await self._close_signed_out()
            return
        self.confirmed_at.clear()
        for stream in list(self.seen):
            if not await self._may_receive(stream):
                return

    async def live_event(self, message):
        event = message["event"]
        stream = event["stream"]
        if stream not in self.seen or event["seq"] <= self.seen[stream]:
            return
        if event["seq"] > self.seen[stream] + 1:
            # Pushes from two processes can arrive out of order: fill the gap from the database.
            await self._catch_up({stream: self.seen[stream]})
            return
        await self._deliver(event)

    async def _catch_up(self, streams: dict[str, int]) -> None:
        missed = await database_sync_to_async(events.events_since)(streams)
        per_stream: dict[str, int] = {}
        for event in missed:
            per_stream[event["stream"]] = per_stream.get(event["stream"], 0) + 1
        for stream, count in per_stream.items():
            if count > events.REPLAY_LIMIT:
                # Too far behind to replay: the page reloads its state instead.
                self.seen[stream] = await database_sync_to_async(events.current_seq)(stream)
                await self.send_json({"type": "reset", "stream": stream, "seq": self.seen[stream]})
        for event in missed:
            if per_stream[event["stream"]] <= events.REPLAY_LIMIT:
                await self._deliver(event)

    async def _deliver(self, event: dict) -> None:
        stream = event["stream"]
        if event["seq"] <= self.seen.get(stream, event["seq"]):
            return
        if not await self._may_receive(stream):
            return
        self.seen[stream] = event["seq"]
        await self.send_json(
            {
                "type": "event",
                "stream": stream,
                "seq": event["seq"],
                "name": event["type"],
                "payload": event["payload"],
            }
        )

    async def _may_receive(self, stream: str) -> bool:
        """Access is re-checked before delivery, at most every LIVE_EVENTS_ACCESS_RECHECK_SECONDS per stream
        (and at once after an access change): a removed member or a signed-out session gets nothing more."""
        if self.closed or stream not in self.seen:
            return False
        confirmed = self.confirmed_at.get(stream)
        if (
            confirmed is not None
            and time.monotonic() - confirmed < settings.LIVE_EVENTS_ACCESS_RECHECK_SECONDS
        ):
            return True
        signed_in, allowed = await database_sync_to_async(self._current_access)(stream)
        if not signed_in:
            await self._close_signed_out()
            return False
        if not allowed:
            await self.channel_layer.group_discard(events.group_name(stream), self.channel_name)
            self.seen.pop(stream, None)
            self.confirmed_at.pop(stream, None)
            await self.send_json({"type": "error", "stream": stream, "error": "access revoked"})
            return False
        self.confirmed_at[stream] = time.monotonic()
        return True

    def _current_access(self, stream: str) -> tuple[bool, bool]:
        """(session still signed in as this user, user may still view the stream), fresh from the database."""
        session = self.scope.get("session")
        session_key = session.session_key if session is not None else None
        # A fresh read: logout deletes the session row, so the cached scope session cannot tell.
        stored = import_module(settings.SESSION_ENGINE).SessionStore(session_key) if session_key else None
        if stored is None or str(stored.get(SESSION_KEY)) != str(self.user.pk):
            return False, False
        user = get_user_model().objects.filter(pk=self.user.pk, is_active=True).first()
        # A password change invalidates the user's other sessions, as Django's own middleware does.
        if user is None or not constant_time_compare(
            str(stored.get(HASH_SESSION_KEY, "")), user.get_session_auth_hash()
        ):
            return False, False
        return True, events.stream_allowed(user, stream)

    async def _close_signed_out(self) -> None:
        if not self.closed:
            self.closed = True
            await self.close(code=4401)

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.seen:
                try:
                    await self._catch_up(dict(self.seen))
                except Exception:
                    logger.exception("Polling live events failed")
