"""The DingTalk and WeCom robot clients: the 加签 test vector, and the errcode → error-class table that the
delivery log relies on to retry (transient) or show a configuration error (permanent). The answers come
over HTTP from the stand-in (sandbox/chatrobots), which is told which errcode to give."""

from __future__ import annotations

import base64
import socket
from urllib.parse import unquote_plus

import pytest
from django.test import override_settings

from integrations.dingtalk import DingTalkRobot, dingtalk_sign
from integrations.errors import Invalid, NotFound, RateLimited, ServerError, Unauthorized, Unreachable
from integrations.wecom import WeComRobot

TOKEN = "table-token"
SECRET = "SEC" + "5ecre7" * 10
KEY = "table-key"


def test_dingtalk_sign_reproduces_the_reference_test_vector():
    # ../shared/reference/integrations-2.md, section F.
    assert (
        dingtalk_sign("SEC0123456789abcdef", 1700000000000)
        == "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
    )


def test_dingtalk_sign_is_a_url_encoded_sha256_mac_that_changes_with_the_timestamp():
    sign = dingtalk_sign("SEC0123456789abcdef", 1700000000001)
    assert sign != dingtalk_sign("SEC0123456789abcdef", 1700000000000)
    assert not set("+/=") & set(sign)  # quote_plus turned them into %2B %2F %3D
    assert len(base64.b64decode(unquote_plus(sign))) == 32


@pytest.fixture
def standin(chatrobots_standin):
    chatrobots_standin.add_dingtalk_robot(TOKEN, secret=SECRET, keywords=["告警"])
    chatrobots_standin.add_wecom_robot(KEY)
    return chatrobots_standin


# errcode, class, permanent, retry_after
DINGTALK_TABLE = [
    (130101, RateLimited, False, 60.0),
    (90030, RateLimited, False, 3600.0),
    (-1, ServerError, False, None),
    (310000, Unauthorized, True, None),
    (300005, Unauthorized, True, None),
    (300001, Invalid, True, None),
    (400013, Invalid, True, None),  # one DingTalk never told us about: not retried
]
WECOM_TABLE = [
    (45009, RateLimited, False, 60.0),
    (-1, ServerError, False, None),
    (93000, Unauthorized, True, None),
    (40008, Invalid, True, None),
    (44004, Invalid, True, None),
    (40058, Invalid, True, None),
    (60020, Invalid, True, None),
]


@pytest.mark.parametrize(("errcode", "cls", "permanent", "retry_after"), DINGTALK_TABLE)
def test_dingtalk_errcode_maps_to_its_error_class(standin, errcode, cls, permanent, retry_after):
    standin.inject_errcode(TOKEN, errcode, f"message for {errcode}")
    robot = DingTalkRobot(standin.url, TOKEN, secret=SECRET, keyword="告警")
    with pytest.raises(cls) as exc_info:
        robot.send_text("告警 go-hello")
    error = exc_info.value
    assert type(error) is cls
    assert error.permanent is permanent
    assert error.retry_after == retry_after
    assert error.details == {"errcode": errcode, "errmsg": f"message for {errcode}"}
    assert error.cause == f"message for {errcode}"
    assert standin.messages() == []
    robot.send_text("告警 go-hello")  # the injected answer was for one send only
    assert len(standin.messages()) == 1


@pytest.mark.parametrize(("errcode", "cls", "permanent", "retry_after"), WECOM_TABLE)
def test_wecom_errcode_maps_to_its_error_class(standin, errcode, cls, permanent, retry_after):
    standin.inject_errcode(KEY, errcode, f"message for {errcode}")
    with pytest.raises(cls) as exc_info:
        WeComRobot(standin.url, KEY).send_markdown("**go-hello** critical")
    error = exc_info.value
    assert type(error) is cls
    assert (error.permanent, error.retry_after) == (permanent, retry_after)
    assert error.details == {"errcode": errcode, "errmsg": f"message for {errcode}"}


@pytest.mark.parametrize(
    ("status", "cls", "permanent"),
    [
        (500, ServerError, False),
        (502, ServerError, False),
        (429, RateLimited, False),
        (403, Unauthorized, True),
    ],
)
def test_http_status_without_errcode_maps_to_its_error_class(standin, status, cls, permanent):
    standin.set_outage(True, status=status)
    for send in (
        lambda: DingTalkRobot(standin.url, TOKEN, secret=SECRET).send_text("告警 x"),
        lambda: WeComRobot(standin.url, KEY).send_text("x"),
    ):
        with pytest.raises(cls) as exc_info:
            send()
        assert type(exc_info.value) is cls
        assert exc_info.value.permanent is permanent
        assert exc_info.value.status == status


def test_a_wrong_webhook_base_is_a_permanent_not_found(standin):
    with pytest.raises(NotFound, match="webhook base") as exc_info:
        WeComRobot(f"{standin.url}/wrong", KEY).send_text("x")
    assert exc_info.value.permanent


def test_no_robot_service_listening_is_a_transient_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for send in (
        lambda: DingTalkRobot(closed, TOKEN).send_text("x"),
        lambda: WeComRobot(closed, KEY).send_text("x"),
    ):
        with pytest.raises(Unreachable) as exc_info:
            send()
        assert not exc_info.value.permanent
        assert "Max retries exceeded" in exc_info.value.cause  # requests' message, which names the URL…
        assert TOKEN not in str(exc_info.value) and KEY not in str(exc_info.value)  # …without the credential
        assert exc_info.value.__suppress_context__  # a traceback does not print the original either


def test_credentials_stay_out_of_the_clients_repr():
    dingtalk, wecom = (
        DingTalkRobot("https://oapi.dingtalk.com", TOKEN, secret=SECRET),
        WeComRobot("http://x", KEY),
    )
    assert TOKEN not in repr(dingtalk) and SECRET not in repr(dingtalk)
    assert KEY not in repr(wecom)


def test_empty_messages_are_refused_locally(standin):
    with pytest.raises(Invalid, match="empty"):
        DingTalkRobot(standin.url, TOKEN, secret=SECRET).send_text("  ")
    with pytest.raises(Invalid, match="title"):
        DingTalkRobot(standin.url, TOKEN, secret=SECRET).send_markdown("", "告警 text")
    with pytest.raises(Invalid, match="empty"):
        WeComRobot(standin.url, KEY).send_markdown("")
    assert standin.attempts() == []


def test_webhook_bases_come_from_settings(standin, settings):
    assert settings.DINGTALK_WEBHOOK_BASE == "https://oapi.dingtalk.com"
    assert settings.WECOM_WEBHOOK_BASE == "https://qyapi.weixin.qq.com"
    with override_settings(DINGTALK_WEBHOOK_BASE=standin.url, WECOM_WEBHOOK_BASE=standin.url):
        DingTalkRobot.from_settings(TOKEN, secret=SECRET, keyword="告警").send_text("告警 from settings")
        WeComRobot.from_settings(KEY).send_text("from settings")
    assert sorted(m.system for m in standin.messages()) == ["dingtalk", "wecom"]
