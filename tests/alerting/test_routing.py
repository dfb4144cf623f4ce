"""Alert routing: the project's policy for (environment, severity) picks the channels; quiet hours, the
repeat interval, send-resolved and @-mentions on critical decide each message. Driven through the
signal the alert receiver sends (alerting.signals.alert_transitioned), asserting the Delivery rows."""

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from alerting.choices import AlertStatus, Mention
from alerting.models import Alert, AlertTransition, Channel, Delivery
from alerting.services.alerts import alerts_receive
from alerting.services.delivery import deliveries_due
from alerting.services.routing import alert_transitions_route_missed, policy_create
from alerting.signals import alert_transitioned
from projects.models import UserProfile
from tests.alerting.payloads import notification

pytestmark = pytest.mark.django_db

# 03:00 in Asia/Shanghai (the portal's TIME_ZONE in tests) and 14:00 there.
NIGHT = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)
DAY = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def channel(project, name: str, kind: str = "dingtalk", **config) -> Channel:
    return Channel.objects.create(project=project, name=name, kind=kind, config=config)


def fire(
    project,
    *,
    severity: str = "warning",
    environment: str = "prod",
    fingerprint: str = "f1",
    starts_at: datetime | None = None,
    alertname: str = "ErrorRatioHigh",
    annotations: dict | None = None,
) -> Alert:
    alert = Alert.objects.create(
        fingerprint=fingerprint,
        starts_at=starts_at or timezone.now(),
        status=AlertStatus.FIRING,
        alertname=alertname,
        severity=severity,
        project=project,
        environment=environment,
        labels={
            "alertname": alertname,
            "severity": severity,
            "project": project.name if project else "ghost",
            "env": environment,
            "service": project.name if project else "ghost",
        },
        annotations=annotations
        or {"summary": "5xx ratio above 5%", "value": "0.30000000000000004", "threshold": "0.05"},
    )
    alert_transitioned.send(sender=Alert, alert_id=alert.pk, transition=AlertStatus.FIRING)
    return alert


def route(people, environment: str, severity: str, channels: list, **options):
    return policy_create(
        actor=people.owner,
        project=people.project,
        environment=environment,
        severity=severity,
        channels=channels,
        **options,
    )


def resolve(alert: Alert) -> None:
    alert.status, alert.ends_at = AlertStatus.RESOLVED, timezone.now()
    alert.save()
    alert_transitioned.send(sender=Alert, alert_id=alert.pk, transition=AlertStatus.RESOLVED)


@pytest.fixture
def robots(people):
    return {
        "prod": channel(people.project, "prod-robot"),
        "email": channel(people.project, "prod-mail", "email", recipients=["oncall@example.com"]),
        "test": channel(people.project, "test-robot", "wecom"),
        "ops": channel(None, "ops-robot"),
    }


def test_the_policy_for_environment_and_severity_picks_the_channels(people, robots):
    route(people, "prod", "warning", [robots["prod"], robots["email"]])
    route(people, "test", "warning", [robots["test"]])
    alert = fire(people.project)
    rows = Delivery.objects.filter(alert=alert).order_by("channel__name")
    assert [(d.channel.name, d.cause) for d in rows] == [
        ("prod-mail", "alert-firing"),
        ("prod-robot", "alert-firing"),
    ]
    robot = rows.get(channel=robots["prod"])
    assert robot.link == f"{settings.PORTAL_PUBLIC_URL}/projects/orders/alerts/"
    assert robot.text.startswith("### ") and "0.3" in robot.text and "0.05" in robot.text
    assert "[" in robot.text and robot.link in robot.text  # the Markdown link to the portal
    mail = rows.get(channel=robots["email"])
    assert not mail.text.startswith("#") and mail.link in mail.text
    assert robot.mentions == {}  # a warning mentions nobody

    test_alert = fire(people.project, environment="test", fingerprint="f2")
    assert [d.channel.name for d in Delivery.objects.filter(alert=test_alert)] == ["test-robot"]


def test_an_alert_without_project_or_without_policy_goes_to_the_ops_channels(people, robots):
    disabled = channel(None, "ops-off")
    disabled.enabled = False
    disabled.save()
    orphan = fire(None, fingerprint="o1")
    assert [d.channel.name for d in Delivery.objects.filter(alert=orphan)] == ["ops-robot"]
    assert Delivery.objects.get(alert=orphan).link.endswith("/alerts/")
    # The project has no policy for prod · critical: ops get it rather than nobody.
    unrouted = fire(people.project, severity="critical", fingerprint="o2")
    assert [d.channel.name for d in Delivery.objects.filter(alert=unrouted)] == ["ops-robot"]


def test_quiet_hours_hold_back_all_but_critical_until_they_end(people, robots):
    for severity in ("warning", "critical"):
        route(
            people,
            "prod",
            severity,
            [robots["prod"]],
            quiet_start=time(22, 0),
            quiet_end=time(7, 0),
        )
    with time_machine.travel(NIGHT, tick=False):
        quiet = fire(people.project, fingerprint="q1")
        loud = fire(people.project, severity="critical", fingerprint="q2")
        # The warning waits for 07:00 in Shanghai (23:00 UTC); the critical one goes now.
        [held] = Delivery.objects.filter(alert=quiet)
        assert held.next_attempt_at == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
        assert held.pk not in deliveries_due()
    assert Delivery.objects.filter(alert=loud, channel=robots["prod"]).count() == 1
    assert held.pk in deliveries_due(now=datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    with time_machine.travel(DAY, tick=False):
        daytime = fire(people.project, fingerprint="q3")
    assert Delivery.objects.filter(alert=daytime).count() == 1


def test_a_firing_alert_is_not_sent_again_within_the_repeat_interval(people, robots):
    route(people, "prod", "warning", [robots["prod"]], repeat_interval_minutes=60)
    start = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        first = fire(people.project, starts_at=start)
        # The same signal again (a duplicate): nothing more.
        alert_transitioned.send(sender=Alert, alert_id=first.pk, transition=AlertStatus.FIRING)
    with time_machine.travel(start + timedelta(minutes=30), tick=False):
        again = fire(people.project, starts_at=start + timedelta(minutes=30))  # a new occurrence
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        later = fire(people.project, starts_at=start + timedelta(minutes=61))
    assert Delivery.objects.filter(alert=first).count() == 1
    assert Delivery.objects.filter(alert=again).count() == 0
    assert Delivery.objects.filter(alert=later).count() == 1


def test_resolved_messages_follow_send_resolved(people, robots):
    route(people, "prod", "warning", [robots["prod"]], send_resolved=True)
    route(people, "test", "warning", [robots["test"]], send_resolved=False)
    prod = fire(people.project, fingerprint="r1")
    resolve(prod)
    resolve(prod)  # a duplicate resolved signal sends nothing more
    assert list(Delivery.objects.filter(alert=prod).order_by("id").values_list("cause", flat=True)) == [
        "alert-firing",
        "alert-resolved",
    ]
    resolved = Delivery.objects.get(alert=prod, cause="alert-resolved")
    assert resolved.title.startswith("[") and resolved.link
    test = fire(people.project, environment="test", fingerprint="r2")
    resolve(test)
    assert list(Delivery.objects.filter(alert=test).values_list("cause", flat=True)) == ["alert-firing"]


def test_critical_mentions_the_owner_or_the_on_call_person_on_robots(people, robots):
    UserProfile.objects.create(user=people.owner, mobile="13800000001")
    UserProfile.objects.create(user=people.developer, mobile="+8613800000002")
    route(people, "prod", "critical", [robots["prod"], robots["email"]], mention=Mention.OWNER)
    alert = fire(people.project, severity="critical", fingerprint="m1")
    assert Delivery.objects.get(alert=alert, channel=robots["prod"]).mentions == {"mobiles": ["13800000001"]}
    assert Delivery.objects.get(alert=alert, channel=robots["email"]).mentions == {}

    route(people, "test", "critical", [robots["test"]], mention=Mention.ON_CALL, on_call=people.developer)
    on_call = fire(people.project, severity="critical", environment="test", fingerprint="m2")
    assert Delivery.objects.get(alert=on_call).mentions == {"mobiles": ["+8613800000002"]}


def test_messages_are_in_the_projects_language(people, robots):
    route(people, "prod", "warning", [robots["prod"]])
    route(people, "test", "warning", [robots["test"]])
    prod = Delivery.objects.get(alert=fire(people.project, fingerprint="l1"))
    assert "错误率" in prod.text and "告警" in prod.title  # production: Chinese by default
    test = Delivery.objects.get(alert=fire(people.project, environment="test", fingerprint="l2"))
    assert "Error ratio" in test.text and "Firing" in test.title  # test: the portal's default (en)
    people.project.message_language = "en"
    people.project.save()
    english = Delivery.objects.get(alert=fire(people.project, fingerprint="l3"))
    assert "Error ratio 0.3, threshold 0.05" in english.text
    people.project.message_language = "zh-hans"
    people.project.save()
    chinese = Delivery.objects.get(alert=fire(people.project, environment="test", fingerprint="l4"))
    assert "错误率 0.3，阈值 0.05" in chinese.text


def test_an_alert_change_whose_routing_was_lost_is_routed_by_the_sweeper(
    people, django_capture_on_commit_callbacks
):
    """The receiver committed the alert but its process died before the routing ran (the on-commit signal
    never came): the sweeper routes the change after the grace time, once."""

    channel = Channel.objects.create(project=people.project, name="robot", kind="dingtalk")
    policy_create(
        actor=people.owner,
        project=people.project,
        environment="test",
        severity="critical",
        channels=[channel],
    )
    alerts_receive(payload=notification(project="orders"))  # its on-commit routing is lost: never run
    [change] = AlertTransition.objects.all()
    assert change.routed_at is None and not Delivery.objects.exists()
    assert alert_transitions_route_missed() == 0  # still within the grace time: the routing may be on its way
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.ALERT_ROUTE_GRACE_SECONDS + 1)):
        assert alert_transitions_route_missed() == 1
        assert alert_transitions_route_missed() == 0
    [delivery] = Delivery.objects.all()
    assert delivery.channel == channel and delivery.cause == "alert-firing"
    change.refresh_from_db()
    assert change.routed_at is not None

    # The normal path marks its change routed, so the sweeper leaves it alone.
    with django_capture_on_commit_callbacks(execute=True):
        alerts_receive(payload=notification(project="orders", resolved=True))
    resolved = AlertTransition.objects.get(status=AlertStatus.RESOLVED)
    assert resolved.routed_at is not None
    assert Delivery.objects.filter(cause="alert-resolved").count() == 1
