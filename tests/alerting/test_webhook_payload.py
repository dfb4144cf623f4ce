"""Parsing Alertmanager's version 4 webhook payload (alerting.webhook), from the captured sample."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from alerting.webhook import parse_notification, parse_time
from tests.alerting.payloads import CAPTURED, notification


def test_the_captured_firing_notification_parses_to_one_alert():
    [alert] = parse_notification(CAPTURED)
    assert alert.fingerprint == "4d9e5bdac7ef73a4"
    assert alert.status == "firing"
    assert alert.starts_at == datetime(2026, 11, 30, 2, 59, 16, 182000, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time: not ended
    assert alert.alertname == "HighErrorRatio"
    assert alert.severity == "critical"
    assert alert.project_name == "go-hello"
    assert alert.environment == "test"
    assert alert.annotations == {"summary": "5xx ratio above 5% for go-hello"}
    assert alert.generator_url.startswith("http://vm:19090/graph")


def test_the_resolved_notification_keeps_the_occurrence_and_has_an_end():
    [firing] = parse_notification(notification())
    [resolved] = parse_notification(notification(resolved=True))
    assert (resolved.fingerprint, resolved.starts_at) == (firing.fingerprint, firing.starts_at)
    assert resolved.status == "resolved"
    assert resolved.ends_at == datetime(2026, 11, 30, 2, 59, 31, 182000, tzinfo=UTC)


def test_nanosecond_times_and_offsets_are_read():
    assert parse_time("2026-11-30T17:50:42.506789123Z") == datetime(
        2026, 11, 30, 17, 50, 42, 506789, tzinfo=UTC
    )
    assert parse_time("2026-11-30T10:00:00+08:00") == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_an_unknown_severity_is_read_as_warning():
    payload = notification()
    payload["alerts"][0]["labels"]["severity"] = "page"
    assert parse_notification(payload)[0].severity == "warning"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "__all__"),
        ({**CAPTURED, "version": "3"}, "version"),
        ({**CAPTURED, "alerts": "none"}, "alerts"),
        (notification(status="pending"), "alerts[0].status"),
        (notification(fingerprint="not hex!"), "alerts[0].fingerprint"),
        (notification(startsAt="2026-11-30"), "alerts[0].startsAt"),
        (notification(labels={"severity": "critical"}), "alerts[0].labels"),
        (notification(labels={"alertname": 5}), "alerts[0].labels"),
        (notification(labels={"alertname": "a\x00b"}), "alerts[0].labels"),
        (notification(status="resolved"), "alerts[0].endsAt"),  # resolved, but no end
    ],
)
def test_a_malformed_payload_is_refused_by_field(payload, field):
    with pytest.raises(ValidationError) as caught:
        parse_notification(payload)
    assert field in caught.value.message_dict
