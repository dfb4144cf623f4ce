"""The live tail of an environment's log-pipeline lines: one Celery task chain per environment being viewed,
however many people view it, and no thread in the web server.

State lives in the portal's Redis, per environment (``pipeline-tail:<id>:…``):

- ``viewers``: a sorted set of the sockets watching (their channel names), scored by when each stops
  counting; a socket refreshes itself every third of LOG_PIPELINE_TAIL_VIEWER_SECONDS and removes itself
  when it closes, so a browser that vanished stops counting after that many seconds at most.
- ``chain``: the running chain's token, with a TTL its runs refresh. A viewer that finds none sets it
  (``SET NX``: only one wins) and queues the first run; a chain whose worker died expires and the next
  viewer refresh starts a new one. A run whose token is no longer the chain's (a duplicate delivery, a
  chain replaced after expiring) stops.
- ``offsets``: the chain's next offset per partition, so each run reads only what is new.

Each run (``tail_step``) checks in one atomic script that its chain is current and someone still watches
(else it ends the chain: a viewer arriving at that moment finds no chain and starts one), reads what is
new for at most about a second, sends the service's lines to the channel-layer group
``pipeline.<environment id>`` (the sockets forward them) and is queued again after
LOG_PIPELINE_TAIL_INTERVAL seconds. The first run of a chain starts TAIL_BACKLOG_SECONDS back, so a
viewer sees the lines of the moments before it opened the tail.

Embedded mode has no Redis and its in-memory channel layer cannot cross from the worker to the web
server: the tail is off there (``tail_available``), the search still works.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid

from django.conf import settings
from django.utils.translation import gettext as _

from clusters.models import LogPipeline, ProjectEnvironment, log_key
from clusters.selectors import pipeline_logs
from clusters.tasks import pipeline_tail as pipeline_tail_task
from integrations.errors import IntegrationError
from observability.events import send_to_group

logger = logging.getLogger(__name__)

TAIL_BACKLOG_SECONDS = 10
MAX_LINES_PER_RUN = 1000
MESSAGE_BYTES = 256 * 1024  # lines per channel-layer message, by their raw size
ERROR_PAUSE_SECONDS = 5.0  # between runs while Kafka cannot be read

# Atomically: is this run's chain still the one, and does anyone still watch? End the chain if not.
_CONTINUE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[3])
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) return 1 end
return 0
"""


def tail_available() -> bool:
    return not settings.EMBEDDED and bool(settings.REDIS_URL)


def group_name(environment_id: int) -> str:
    return f"pipeline.{environment_id}"


def _keys(environment_id: int) -> tuple[str, str, str]:
    base = f"pipeline-tail:{environment_id}"
    return f"{base}:chain", f"{base}:viewers", f"{base}:offsets"


@functools.cache
def _redis_for(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3, decode_responses=True)


def _redis():
    return _redis_for(settings.REDIS_URL)


def _chain_ttl() -> int:
    # Longer than a run plus its countdown and a busy queue; a dead chain is replaced after this long.
    return max(30, 2 * settings.LOG_PIPELINE_TAIL_VIEWER_SECONDS)


def viewer_refresh(*, environment_id: int, viewer: str) -> bool:
    """``viewer`` (a socket's channel name) watches the environment for the next
    LOG_PIPELINE_TAIL_VIEWER_SECONDS; start the environment's chain if none runs. True when this call
    started it."""
    client = _redis()
    chain, viewers, offsets = _keys(environment_id)
    ttl = settings.LOG_PIPELINE_TAIL_VIEWER_SECONDS
    # The viewer counts before the chain is looked at: a chain ending meanwhile either sees it or is gone.
    client.zadd(viewers, {viewer: time.time() + ttl})
    client.expire(viewers, ttl * 2)
    token = uuid.uuid4().hex
    if not client.set(chain, token, nx=True, ex=_chain_ttl()):
        return False
    client.delete(offsets)
    start_ms = int((time.time() - TAIL_BACKLOG_SECONDS) * 1000)
    try:
        pipeline_tail_task.apply_async(
            kwargs={"environment_id": environment_id, "token": token, "start_ms": start_ms}
        )
    except Exception:
        _release(environment_id, token)  # no run was queued: the next refresh tries again
        raise
    return True


def viewer_leave(*, environment_id: int, viewer: str) -> None:
    _redis().zrem(_keys(environment_id)[1], viewer)


def viewers_count(environment_id: int) -> int:
    client = _redis()
    viewers = _keys(environment_id)[1]
    return client.zcount(viewers, time.time(), "+inf")


def chain_token(environment_id: int) -> str | None:
    return _redis().get(_keys(environment_id)[0])


def _positions(raw: dict) -> dict[int, int]:
    return {int(k): int(v) for k, v in raw.items()}


def _send(environment_id: int, message: dict) -> None:
    try:
        send_to_group(group_name(environment_id), message)
    except Exception:  # a viewer misses a batch; the chain goes on
        logger.exception("pipeline tail: could not send to the viewers of environment %s", environment_id)


def _send_lines(environment_id: int, lines: list[dict], skipped: int) -> None:
    batch: list[dict] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line["raw"]) + len(line["msg"])
        if size >= MESSAGE_BYTES:
            _send(environment_id, {"type": "pipeline.lines", "lines": batch, "skipped": skipped})
            batch, size, skipped = [], 0, 0
    if batch or skipped:
        _send(environment_id, {"type": "pipeline.lines", "lines": batch, "skipped": skipped})


def _release(environment_id: int, token: str) -> None:
    chain, _viewers, offsets = _keys(environment_id)
    _redis().eval(_RELEASE, 2, chain, offsets, token)


def tail_step(*, environment_id: int, token: str, start_ms: int | None = None) -> float | None:
    """One run of an environment's chain: the seconds until the next run, or None when the chain ends."""
    client = _redis()
    chain, viewers, offsets = _keys(environment_id)
    state = client.eval(_CONTINUE, 3, chain, viewers, offsets, token, time.time(), _chain_ttl())
    if state != 1:
        return None
    environment = (
        ProjectEnvironment.objects.select_related("project", "cluster").filter(pk=environment_id).first()
    )
    pipeline = (
        LogPipeline.objects.filter(cluster_id=environment.cluster_id).first()
        if environment is not None and environment.cluster_id
        else None
    )
    if pipeline is None:
        _send(environment_id, {"type": "pipeline.error", "message": _("No log pipeline is set up here.")})
        _release(environment_id, token)
        return None
    key = log_key(environment.project.name, environment.environment)
    positions = _positions(client.hgetall(offsets)) or None
    try:
        with pipeline_logs.reader_for(pipeline) as reader:
            found = reader.read_new(
                pipeline.topic_for(key),
                positions,
                match=pipeline_logs.key_matcher(key),
                start_ms=start_ms if positions is None else None,
                max_records=MAX_LINES_PER_RUN,
                max_seconds=1.0,
            )
    except IntegrationError as exc:
        _send(
            environment_id,
            {"type": "pipeline.error", "message": _("Kafka could not be read: %(e)s") % {"e": exc}},
        )
        return ERROR_PAUSE_SECONDS
    if found.positions:
        pipe = client.pipeline(transaction=False)
        pipe.hset(offsets, mapping={str(p): o for p, o in found.positions.items()})
        pipe.expire(offsets, _chain_ttl())
        pipe.execute()
    lines = [pipeline_logs.parse_line(record) for record in found.records]
    if lines or found.skipped:
        _send_lines(environment_id, lines, found.skipped)
    return settings.LOG_PIPELINE_TAIL_INTERVAL


def tail_run(*, environment_id: int, token: str, start_ms: int | None = None) -> None:
    """The task's body: one step, then the next run queued while someone watches."""
    countdown = tail_step(environment_id=environment_id, token=token, start_ms=start_ms)
    if countdown is not None:
        # start_ms again: it matters only until the chain has positions (a first read that failed).
        pipeline_tail_task.apply_async(
            kwargs={"environment_id": environment_id, "token": token, "start_ms": start_ms},
            countdown=countdown,
        )
