"""The words of messages: Markdown for robots, plain text for email, one short SMS line; the six rules
rendered from value and threshold, anything else from its summary; the project's language."""

from datetime import UTC, datetime

import pytest

from alerting import messages
from alerting.models import Alert
from opsportal.notices import Notice, NoticeKind

pytestmark = pytest.mark.django_db

LINK = "https://ops.example.com/projects/orders/alerts/"


def alert(project, alertname: str, annotations: dict, **labels) -> Alert:
    return Alert(
        fingerprint="f",
        starts_at=datetime(2026, 11, 30, 2, 0, tzinfo=UTC),
        status="firing",
        alertname=alertname,
        severity="critical",
        project=project,
        environment="test",
        labels={"service": "orders", **labels},
        annotations=annotations,
    )


@pytest.mark.parametrize(
    "alertname, expected",
    [
        ("ErrorRatioHigh", "Error ratio 0.3, threshold 0.05"),
        ("LatencyP95High", "p95 latency 0.3 s, threshold 0.05 s"),
        ("PodRestarting", "0.3 restarts, threshold 0.05"),
        ("PodsNotReady", "0.3 pods not ready, threshold 0.05"),
        ("HPAAtMaximum", "0.3 replicas, the maximum is 0.05"),
        ("TargetDown", "Value 0.3, threshold 0.05"),
    ],
)
def test_each_rule_says_value_against_threshold(people, alertname, expected):
    rendered = messages.render_alert(
        alert(people.project, alertname, {"value": "0.30000000000000004", "threshold": "0.05"}),
        transition="firing",
        channel_kind="wecom",
        link=LINK,
    )
    assert expected in rendered.text
    assert rendered.title.startswith("[Firing · Critical] orders · test: ")
    assert "Service: orders" in rendered.text and f"({LINK})" in rendered.text


def test_other_alerts_fall_back_to_the_summary_and_each_kind_has_its_shape(people):
    other = alert(people.project, "DiskFull", {"summary": "Disk /data above 90%"}, pod="orders-0")
    robot = messages.render_alert(other, transition="resolved", channel_kind="dingtalk", link=LINK)
    assert robot.title == "[Resolved · Critical] orders · test: Disk /data above 90%"
    assert robot.text.splitlines()[0] == f"### {robot.title}" and "- Pod: orders-0" in robot.text
    mail = messages.render_alert(other, transition="firing", channel_kind="email", link=LINK)
    assert mail.text.splitlines()[0] == mail.title and mail.text.endswith(LINK) and "###" not in mail.text
    sms = messages.render_alert(
        alert(people.project, "ErrorRatioHigh", {"value": "0.3", "threshold": "0.05"}),
        transition="firing",
        channel_kind="sms",
        link=LINK,
    )
    assert len(sms.text) <= messages.SMS_LIMIT and sms.text.endswith(LINK) and "\n" not in sms.text


def test_language_rule_project_setting_else_chinese_for_prod(people, settings):
    assert messages.message_language(people.project, "prod") == "zh-hans"
    assert messages.message_language(people.project, "test") == settings.LANGUAGE_CODE
    assert messages.message_language(None, "") == settings.LANGUAGE_CODE
    people.project.message_language = "en"
    assert messages.message_language(people.project, "prod") == "en"


def test_notices_render_in_both_languages(people):
    notice = Notice(
        kind=NoticeKind.RELEASE_FAILED,
        project_id=people.project.pk,
        environment="prod",
        path="/projects/orders/releases/7/",
        context={"version": "20261130-1", "error": "Jenkins build #7 ended FAILURE.\nlong console"},
    )
    zh = messages.render_notice(
        notice, project=people.project, channel_kind="dingtalk", link=LINK, recipients=["dora-dev"]
    )
    assert zh.title == "orders · prod 的发布 20261130-1 失败"
    assert "错误：Jenkins build #7 ended FAILURE." in zh.text and "long console" not in zh.text
    assert "请处理：@dora-dev" in zh.text
    people.project.message_language = "en"
    en = messages.render_notice(
        notice, project=people.project, channel_kind="email", link=LINK, recipients=[]
    )
    assert en.title == "Release 20261130-1 of orders · prod failed" and en.text.endswith(LINK)
