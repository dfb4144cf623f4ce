"""Live events: the one module that names streams, shapes payloads and pushes them on commit.

Each stream (``user.3``, ``project.12``) has an increasing sequence number. Events are stored, so a
browser that reconnects with the last number it saw gets what it missed replayed in order.
"""

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F

from observability.models import EventStream, LiveEvent

logger = logging.getLogger(__name__)

STREAM_RE = re.compile(r"^(?P<kind>[a-z]+)\.(?P<key>[0-9]{1,18})$")
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
REPLAY_LIMIT = 500

# kind -> function(user, key) -> bool; apps register the kinds of stream they publish to.
_STREAM_ACCESS: dict[str, Callable[[object, int], bool]] = {}


def register_stream_kind(kind: str, may_view: Callable[[object, int], bool]) -> None:
    _STREAM_ACCESS[kind] = may_view


def user_stream(user_id: int) -> str:
    return f"user.{user_id}"


def project_stream(project_id: int) -> str:
    return f"project.{project_id}"


def cluster_stream(cluster_id: int) -> str:
    """A cluster's own runs (its log proxy rollouts); the clusters app lets only ops read it."""
    return f"cluster.{cluster_id}"


def group_name(stream: str) -> str:
    return f"events.{stream}"


def stream_allowed(user, stream: str) -> bool:
    match = STREAM_RE.match(stream or "")
    if match is None or not getattr(user, "is_authenticated", False):
        return False
    may_view = _STREAM_ACCESS.get(match["kind"])
    return bool(may_view and may_view(user, int(match["key"])))


def publish(*, stream: str, type: str, payload: dict) -> LiveEvent:
    """Store the event with the stream's next sequence number; push it once the transaction commits."""
    if not STREAM_RE.match(stream):
        raise ValueError(f"Bad stream name {stream!r}.")
    if not EVENT_TYPE_RE.match(type):
        raise ValueError(f"Bad event type {type!r}.")
    with transaction.atomic():
        EventStream.objects.get_or_create(name=stream)
        # The row lock orders sequence numbers by commit, per stream.
        counter = EventStream.objects.select_for_update().get(name=stream)
        EventStream.objects.filter(pk=counter.pk).update(last_seq=F("last_seq") + 1)
        counter.refresh_from_db(fields=["last_seq"])
        event = LiveEvent.objects.create(stream=stream, seq=counter.last_seq, type=type, payload=payload)
        message = event.as_message()
        transaction.on_commit(lambda: _push(message))
    return event


def send_to_group(group: str, message: dict) -> None:
    """Send to a channel-layer group from synchronous code (raises what the layer raises)."""
    layer = get_channel_layer()
    if layer is None:
        return
    send = async_to_sync(layer.group_send)
    if _loop_running():
        # Called from synchronous code inside a running event loop: send from a helper thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(send, group, message).result()
    else:
        send(group, message)


def _push(message: dict) -> None:
    try:
        send_to_group(group_name(message["stream"]), {"type": "live.event", "event": message})
    except Exception:
        # The event is stored: a connected page still gets it from replay or polling.
        logger.exception("Could not push live event %s#%s", message["stream"], message["seq"])


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def current_seq(stream: str) -> int:
    return EventStream.objects.filter(name=stream).values_list("last_seq", flat=True).first() or 0


def events_since(streams: dict[str, int]) -> list[dict]:
    """Events newer than the given sequence numbers, oldest first, at most REPLAY_LIMIT per stream."""
    messages: list[dict] = []
    for stream, seq in streams.items():
        rows = LiveEvent.objects.filter(stream=stream, seq__gt=seq).order_by("seq")[: REPLAY_LIMIT + 1]
        messages.extend(event.as_message() for event in rows)
    return messages
