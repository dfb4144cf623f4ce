"""An environment's log lines read back from the log pipeline (Kafka): where they are, a search over the last
minutes, and each line as the page shows it.

A service that logs to the pipeline pushes JSON lines to the proxy under the list key
``logs:<project>:<environment>``; the proxy writes each line as one Kafka record with that key, on the topic
the cluster's mapping gives (``LogPipeline.topic_for``). So a service's lines are the records of one topic
with one key, and other services' lines on the same topic are never shown.

The search is newest first, capped at ``limit`` lines (the answer says when the cap was hit), over the
records whose Kafka timestamp is in the last ``minutes``. ``level`` keeps lines **at or above** that level
(WARN shows WARN, ERROR and FATAL); a line without a level (not JSON, or no level field) passes only when no
level is asked for. ``q`` is a case-insensitive substring of the line's text or of its parsed message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters.models import LogPipeline, log_key
from clusters.selectors.environments import EnvironmentRef
from integrations.kafka import KafkaReader, Record

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL", "ERR": "ERROR", "PANIC": "FATAL", "SEVERE": "ERROR"}
MINUTE_CHOICES = (5, 15, 60, 180, 360, 1440)
MAX_MINUTES = 1440
DEFAULT_MINUTES = 15
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_QUERY = 200
# Fields shown in their own columns; the rest of a JSON line is listed after its message.
_TIME_FIELDS = ("ts", "@timestamp", "timestamp", "time")
_LEVEL_FIELDS = ("level", "severity", "lvl", "log.level")
_MESSAGE_FIELDS = ("msg", "message")
_LOGGER_FIELDS = ("logger", "logger_name", "log.logger")
MAX_LINE = 64 * 1024  # a longer value is shown cut, with the raw text cut too


def normalize_level(value) -> str:
    """A level name as LEVELS spells it ("" when it is none of them)."""
    text = str(value or "").strip().upper()
    text = _ALIASES.get(text, text)
    return text if text in LEVELS else ""


@dataclass(frozen=True)
class SearchQuery:
    minutes: int = DEFAULT_MINUTES
    level: str = ""
    q: str = ""
    limit: int = DEFAULT_LIMIT

    def as_dict(self) -> dict:
        return {"minutes": self.minutes, "level": self.level, "q": self.q, "limit": self.limit}


def _whole(params: Mapping, key: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = str(params.get(key) or "").strip()
    if raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ValidationError(_("%(key)s must be a whole number.") % {"key": key}, code="invalid")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationError(
            _("%(key)s must be between %(min)s and %(max)s.") % {"key": key, "min": minimum, "max": maximum},
            code="invalid",
        )
    return value


def parse_search(params: Mapping) -> SearchQuery:
    """The search's parameters from a query string; ValidationError naming every bad one."""
    errors: dict[str, list[ValidationError]] = {}
    values: dict = {}
    for key, default, maximum in (
        ("minutes", DEFAULT_MINUTES, MAX_MINUTES),
        ("limit", DEFAULT_LIMIT, MAX_LIMIT),
    ):
        try:
            values[key] = _whole(params, key, default, minimum=1, maximum=maximum)
        except ValidationError as exc:
            errors[key] = [exc]
    raw_level = str(params.get("level") or "").strip()
    level = normalize_level(raw_level)
    if raw_level and not level:
        errors["level"] = [
            ValidationError(
                _("level must be one of %(levels)s.") % {"levels": ", ".join(LEVELS)}, code="invalid"
            )
        ]
    q = str(params.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        errors["q"] = [
            ValidationError(_("q must be at most %(n)s characters.") % {"n": MAX_QUERY}, code="invalid")
        ]
    if errors:
        raise ValidationError(errors)
    return SearchQuery(minutes=values["minutes"], level=level, q=q, limit=values["limit"])


# --- where the lines are --------------------------------------------------------------------------------


def pipeline_of(ref: EnvironmentRef) -> LogPipeline | None:
    cluster = ref.environment.cluster
    return LogPipeline.objects.filter(cluster=cluster).first() if cluster else None


def not_configured_message(ref: EnvironmentRef) -> str:
    cluster = ref.environment.cluster
    return _(
        "No log pipeline is set up for the cluster %(cluster)s, so this service's lines cannot be read from "
        "Kafka here. Ops set one up on the Log pipelines page (/log-pipelines/): Kafka's bootstrap servers, "
        "the topic mapping and the proxy; a service then logs to it with LOG_REDIS_URL."
    ) % {"cluster": cluster.name if cluster else "—"}


def kibana_link(pipeline: LogPipeline, ref: EnvironmentRef) -> str:
    """The pipeline's Kibana (or other log UI) link for this service, its placeholders filled in and
    URL-quoted; "" when none is set or it is not an http(s) URL."""
    template = (pipeline.kibana_url or "").strip()
    if not template:
        return ""
    key = log_key(ref.project.name, ref.environment.environment)
    values = {
        "project": ref.project.name,
        "environment": ref.environment.environment,
        "key": key,
        "topic": pipeline.topic_for(key),
    }
    url = template
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    if urlsplit(url).scheme not in ("http", "https"):
        return ""
    return url


def pipeline_target(ref: EnvironmentRef, pipeline: LogPipeline | None = None) -> dict:
    """What the page and the API say about the environment's pipeline before reading anything."""
    pipeline = pipeline or pipeline_of(ref)
    key = log_key(ref.project.name, ref.environment.environment)
    if pipeline is None:
        return {
            "enabled": False,
            "key": key,
            "topic": "",
            "kibana_url": "",
            "error": not_configured_message(ref),
        }
    return {
        "enabled": True,
        "key": key,
        "topic": pipeline.topic_for(key),
        "kibana_url": kibana_link(pipeline, ref),
        "error": "",
    }


def reader_for(pipeline: LogPipeline) -> KafkaReader:
    return KafkaReader(pipeline.portal_bootstrap, timeout=settings.LOG_PIPELINE_KAFKA_TIMEOUT)


# --- one line ---------------------------------------------------------------------------------------------


def _first(data: dict, names: tuple[str, ...]):
    for name in names:
        if name in data and data[name] not in (None, ""):
            return name, data[name]
    return None, None


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def parse_line(record: Record) -> dict:
    """A record as the page shows it: time, level, logger, message, the other fields, and the raw text.
    A value that is not a JSON object is shown as text (``json`` false)."""
    raw_bytes = record.value[:MAX_LINE]
    raw = raw_bytes.decode("utf-8", errors="replace").rstrip("\r\n")
    kafka_time = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    line = {
        "partition": record.partition,
        "offset": record.offset,
        "kafka_time": kafka_time.replace("+00:00", "Z"),
        "time": "",
        "level": "",
        "level_name": "",
        "logger": "",
        "msg": raw,
        "fields": [],
        "json": False,
        "raw": raw,
        "truncated": len(record.value) > MAX_LINE,
    }
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        line["time"] = line["kafka_time"]
        return line
    used = set()
    name, value = _first(data, _TIME_FIELDS)
    line["time"] = _text(value) if name else line["kafka_time"]
    used.add(name)
    name, value = _first(data, _LEVEL_FIELDS)
    if name:
        line["level_name"] = _text(value)
        line["level"] = normalize_level(value)
        used.add(name)
    name, value = _first(data, _LOGGER_FIELDS)
    if name:
        line["logger"] = _text(value)
        used.add(name)
    name, value = _first(data, _MESSAGE_FIELDS)
    line["msg"] = _text(value) if name else ""
    used.add(name)
    line["fields"] = [[k, _text(v)] for k, v in data.items() if k not in used]
    line["json"] = True
    line["raw"] = json.dumps(data, ensure_ascii=False, indent=2)
    return line


def line_matches(line: dict, query: SearchQuery) -> bool:
    if query.level:
        if not line["level"] or LEVELS.index(line["level"]) < LEVELS.index(query.level):
            return False
    if query.q:
        needle = query.q.casefold()
        if needle not in line["msg"].casefold() and needle not in line["raw"].casefold():
            return False
    return True


def key_matcher(key: str):
    wanted = key.encode()
    return lambda record: record.key == wanted


# --- the search ---------------------------------------------------------------------------------------------


def pipeline_search(ref: EnvironmentRef, query: SearchQuery, *, pipeline: LogPipeline | None = None) -> dict:
    """The environment's lines of the last ``query.minutes`` that match, newest first, at most
    ``query.limit``. Raises IntegrationError when Kafka cannot be read; ``enabled`` false (and ``error``)
    when the cluster has no pipeline."""
    target = pipeline_target(ref, pipeline)
    result = {**target, **query.as_dict(), "lines": [], "capped": False, "complete": True, "scanned": 0}
    if not target["enabled"]:
        return result
    pipeline = pipeline or pipeline_of(ref)
    is_key = key_matcher(target["key"])
    parsed: dict[tuple[int, int], dict] = {}

    def match(record: Record) -> bool:
        if not is_key(record):
            return False
        line = parse_line(record)
        if not line_matches(line, query):
            return False
        parsed[(record.partition, record.offset)] = line
        return True

    since_ms = int((time.time() - query.minutes * 60) * 1000)
    with reader_for(pipeline) as reader:
        found = reader.read_window(
            target["topic"],
            since_ms=since_ms,
            match=match,
            limit=query.limit,
            max_scan=settings.LOG_PIPELINE_SEARCH_MAX_SCAN,
            max_seconds=settings.LOG_PIPELINE_SEARCH_SECONDS,
        )
    result["lines"] = [parsed[(r.partition, r.offset)] for r in found.records]
    result["capped"] = found.capped
    result["complete"] = found.complete
    result["scanned"] = found.scanned
    return result
