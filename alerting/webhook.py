"""Alertmanager's webhook payload (version "4"), parsed and checked before anything is stored.

Shape (captured from Debian's 0.25, ../shared/reference/integrations-2.md D): ``receiver``, ``status``,
``alerts`` (each ``status`` firing|resolved, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL``, ``fingerprint``), ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
``externalURL``, ``version``, ``groupKey``, ``truncatedAlerts``. A firing alert's ``endsAt`` is Go's
zero time ``0001-01-01T00:00:00Z``, which means "not ended". Times are RFC 3339 with up to nine
fractional digits (Python keeps six; both posts of one occurrence truncate alike, so dedupe holds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext as _

from alerting.choices import AlertStatus, Severity

SUPPORTED_VERSION = "4"
_RFC3339 = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?(?P<zone>Z|[+-]\d{2}:\d{2})$"
)
_ZERO_TIME_YEAR = 1  # Go's time.Time{}: "no end yet"
_FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")


@dataclass(frozen=True)
class ReceivedAlert:
    fingerprint: str
    status: str
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")[:200]

    @property
    def severity(self) -> str:
        value = self.labels.get("severity", "")
        return value if value in Severity.values else Severity.WARNING

    @property
    def project_name(self) -> str:
        return self.labels.get("project", "")

    @property
    def environment(self) -> str:
        return self.labels.get("env", "")[:8]


def parse_time(value) -> datetime:
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    moment = datetime.fromisoformat(f"{match['base']}.{fraction}{zone}")
    return moment.astimezone(UTC)


def _string_map(value, field: str, errors: dict) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\x00" not in k + v for k, v in value.items()
    ):
        errors.setdefault(field, []).append(_("Must be an object of strings (without NUL)."))
        return {}
    return value


def _parse_alert(raw, index: int) -> ReceivedAlert:
    prefix = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise ValidationError({prefix: [_("Must be an object.")]})
    errors: dict[str, list[str]] = {}
    status = raw.get("status")
    if status not in AlertStatus.values:
        errors[f"{prefix}.status"] = [_("Must be firing or resolved.")]
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
        errors[f"{prefix}.fingerprint"] = [_("Must be Alertmanager's hexadecimal fingerprint.")]
    labels = _string_map(raw.get("labels"), f"{prefix}.labels", errors)
    if labels and not labels.get("alertname"):
        errors[f"{prefix}.labels"] = [_("The label alertname is required.")]
    annotations = _string_map(raw.get("annotations", {}), f"{prefix}.annotations", errors)
    starts_at = ends_at = None
    try:
        starts_at = parse_time(raw.get("startsAt"))
    except ValueError:
        errors[f"{prefix}.startsAt"] = [_("Must be an RFC 3339 time.")]
    try:
        ends_at = parse_time(raw.get("endsAt", "0001-01-01T00:00:00Z"))
    except ValueError:
        errors[f"{prefix}.endsAt"] = [_("Must be an RFC 3339 time.")]
    if ends_at is not None and ends_at.year == _ZERO_TIME_YEAR:
        ends_at = None
    generator_url = raw.get("generatorURL", "")
    if not isinstance(generator_url, str) or len(generator_url) > 1000:
        errors[f"{prefix}.generatorURL"] = [_("Must be a URL of at most 1000 characters.")]
    if errors:
        raise ValidationError(errors)
    if status == AlertStatus.RESOLVED and ends_at is None:
        raise ValidationError({f"{prefix}.endsAt": [_("A resolved alert needs its end time.")]})
    return ReceivedAlert(
        fingerprint=fingerprint,
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        labels=labels,
        annotations=annotations,
        generator_url=generator_url,
    )


def parse_notification(payload) -> list[ReceivedAlert]:
    """The alerts of one notification; ValidationError (by field) for anything else."""
    if not isinstance(payload, dict):
        raise ValidationError({NON_FIELD_ERRORS: [_("The body must be a JSON object.")]})
    if payload.get("version") != SUPPORTED_VERSION:
        raise ValidationError(
            {"version": [_("Only version %(version)s notifications are accepted.") % {"version": "4"}]}
        )
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValidationError({"alerts": [_("Must be a list.")]})
    parsed: list[ReceivedAlert] = []
    problems: dict[str, list[str]] = {}
    for index, raw in enumerate(alerts):
        try:
            parsed.append(_parse_alert(raw, index))
        except ValidationError as exc:
            problems.update(exc.message_dict)
    if problems:
        raise ValidationError(problems)
    return parsed
