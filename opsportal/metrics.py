"""The portal's own metrics, served at /metrics (opsportal.views.metrics) for Prometheus.

Defined here, in the kernel, so every layer may record them. Label values are bounded: a view's route
name (never the raw path), a task's registered name, an exception's class name, a consumer's kind.

With PROMETHEUS_MULTIPROC_DIR set (``make run``, docker-compose, the tests), every process (Daphne,
each Celery worker process) writes its values to files in that directory and /metrics adds them up; the
directory must be emptied when the portal starts. Without it, the one process's own values are served.
The open-socket gauges count live processes only ("livesum"): a dead worker's sockets are not open.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
MULTIPROCESS = bool(_MULTIPROC_DIR)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Files are named by process: the host name joins the pid, since the web server and the worker may run
# in two containers sharing the directory, where both can have the same pid.
_HOST = socket.gethostname().replace("_", "-")


def process_identifier(pid: int | None = None) -> str:
    return f"{_HOST}-{pid or os.getpid()}"


def process_dead(pid: int) -> None:
    """Stop counting a dead process's open sockets (its counters and histograms stay in the sums)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(process_identifier(pid))


# Before any metric exists: each one takes its value class when it is created.
if MULTIPROCESS:
    Path(_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_identifier)
else:
    # Set but empty (a copied .env) means off, where prometheus_client would write into the current directory.
    values.ValueClass = values.MutexValue

# Seconds: pages and API calls are sub-second; a release step or a task may take many minutes.
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LONG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)

REQUEST_DURATION = Histogram(
    "opsportal_http_request_duration_seconds",
    "Time to answer an HTTP request, by view (route name), method and status class.",
    ["view", "method", "status"],
    buckets=_REQUEST_BUCKETS,
)
TASK_DURATION = Histogram(
    "opsportal_celery_task_duration_seconds",
    "Time a Celery task ran in the worker, by task and outcome (Celery's state: SUCCESS, FAILURE, RETRY…).",
    ["task", "outcome"],
    buckets=_LONG_BUCKETS,
)
TASK_FAILURES = Counter(
    "opsportal_celery_task_failures",
    "Celery tasks that raised, by task and exception class.",
    ["task", "exception"],
)
RELEASE_STEP_DURATION = Histogram(
    "opsportal_release_step_duration_seconds",
    "Time a release step took, from its start to its end (tag, build, deploy, rollback), by outcome.",
    ["step", "outcome"],
    buckets=_LONG_BUCKETS,
)
INTEGRATION_ERRORS = Counter(
    "opsportal_integration_errors",
    "Errors from external systems met by the portal's runs, by system and kind (the error's class).",
    ["system", "kind"],
)
WEBSOCKETS_OPEN = Gauge(
    "opsportal_websockets_open",
    "WebSocket connections accepted and not yet closed, by consumer.",
    ["consumer"],
    multiprocess_mode="livesum",
)
TERMINAL_SESSIONS_OPEN = Gauge(
    "opsportal_terminal_sessions_open",
    "Web terminal sessions whose exec stream is running.",
    multiprocess_mode="livesum",
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# --- HTTP requests ----------------------------------------------------------------------------------


def request_view_label(request) -> str:
    """The route's name (``namespace:name``), else its pattern; static files and unknown paths get a
    fixed word, so a scanner's random paths cannot create series."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route or "unnamed"
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unresolved"


class RequestMetricsMiddleware:
    """Times every request (first in MIDDLEWARE, so the whole stack is inside the measurement)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_DURATION.labels(
            view=request_view_label(request), method=method, status=f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


# --- Celery tasks -----------------------------------------------------------------------------------

_task_started: dict[str, float] = {}


def _task_prerun(task_id=None, **_kwargs) -> None:
    _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id=None, task=None, state=None, **_kwargs) -> None:
    started = _task_started.pop(task_id, None)
    if started is not None and task is not None:
        TASK_DURATION.labels(task=task.name, outcome=state or "UNKNOWN").observe(
            time.perf_counter() - started
        )


def _task_failure(sender=None, exception=None, **_kwargs) -> None:
    name = getattr(sender, "name", None) or "unknown"
    TASK_FAILURES.labels(task=name, exception=type(exception).__name__).inc()


def _worker_process_shutdown(pid=None, **_kwargs) -> None:
    process_dead(pid or os.getpid())


def connect_celery_signals() -> None:
    """Record task durations and failures in the worker (called by opsportal.celery)."""
    from celery import signals

    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="opsportal-metrics-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="opsportal-metrics-postrun")
    signals.task_failure.connect(_task_failure, weak=False, dispatch_uid="opsportal-metrics-failure")
    signals.worker_process_shutdown.connect(
        _worker_process_shutdown, weak=False, dispatch_uid="opsportal-metrics-shutdown"
    )


# --- release steps and integration errors --------------------------------------------------------------


def release_step_observe(*, step: str, outcome: str, seconds: float) -> None:
    RELEASE_STEP_DURATION.labels(step=step, outcome=outcome).observe(max(seconds, 0.0))


def integration_system(exc: BaseException) -> str:
    """Which external system raised ``exc``: the ``integrations.<system>`` package of the innermost frame
    of its traceback that lies in one ("portal" when the portal raised it itself, e.g. an integration
    that is not configured)."""
    system = "portal"
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        parts = module.split(".")
        if len(parts) >= 2 and parts[0] == "integrations" and parts[1] != "errors":
            system = parts[1]
        tb = tb.tb_next
    return system


def integration_error_record(exc: BaseException) -> None:
    INTEGRATION_ERRORS.labels(system=integration_system(exc), kind=type(exc).__name__).inc()


# --- open sockets -------------------------------------------------------------------------------------


class CountedWebSocket:
    """Mixed into a Channels consumer (before the consumer class): the socket counts in
    opsportal_websockets_open under ``metrics_consumer`` from its accept until the consumer ends, however
    it ends (a close by either side, an exception, Daphne cancelling it)."""

    metrics_consumer = "unnamed"
    _counted_open = False

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._counted_open:
                self._counted_open = False
                WEBSOCKETS_OPEN.labels(consumer=self.metrics_consumer).dec()
            await self.ended()

    async def ended(self) -> None:
        """Called once the consumer has ended, however it ended: a consumer undoes here what would
        otherwise outlive its socket (followers, refreshers, group memberships)."""

    async def accept(self, *args, **kwargs):
        await super().accept(*args, **kwargs)
        if not self._counted_open:
            self._counted_open = True
            WEBSOCKETS_OPEN.labels(consumer=self.metrics_consumer).inc()


# --- at scrape time -------------------------------------------------------------------------------------


def celery_queues() -> list[str]:
    """The queues the portal's tasks go to: the default queue and any named by the task routes."""
    names = [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"]
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        names += [r["queue"] for r in routes.values() if isinstance(r, dict) and r.get("queue")]
    return sorted(set(names))


def _redis_depths(url: str, queues: list[str]) -> dict[str, int]:
    import redis

    # kombu keeps a queue's messages in a list per priority step: "<queue>" and "<queue>\x06\x16<n>".
    steps = ("", "\x06\x163", "\x06\x166", "\x06\x169")
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for step in steps:
                pipe.llen(queue + step)
        lengths = pipe.execute()
    finally:
        client.close()
    return {queue: sum(lengths[i * len(steps) : (i + 1) * len(steps)]) for i, queue in enumerate(queues)}


def _filesystem_depths(folder: str, queues: list[str]) -> dict[str, int]:
    # kombu's filesystem transport writes one "<ms>_<uuid>.<queue>.msg" file per message.
    names = [entry.name for entry in os.scandir(folder)] if Path(folder).is_dir() else []
    return {queue: sum(name.endswith(f".{queue}.msg") for name in names) for queue in queues}


class QueueDepthCollector:
    """Messages waiting in each Celery queue, read from the broker when Prometheus scrapes."""

    def collect(self):
        family = GaugeMetricFamily(
            "opsportal_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        queues = celery_queues()
        url = settings.CELERY_BROKER_URL
        try:
            if url.startswith(("redis://", "rediss://", "unix://")):
                depths = _redis_depths(url, queues)
            elif url.startswith("filesystem://"):
                folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", "")
                depths = _filesystem_depths(folder, queues)
            else:
                depths = {}
        except Exception as exc:  # the broker is away: the scrape still answers, without this family
            logger.warning("Celery queue depth not read: %s", exc)
            return
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family


_scrape_time = CollectorRegistry(auto_describe=False)
_scrape_time.register(QueueDepthCollector())


def exposition() -> bytes:
    """The text exposition of every metric: all processes' values in multiprocess mode, then the ones
    read at scrape time."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(_scrape_time)
