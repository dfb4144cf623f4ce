"""The DingTalk and WeCom robot contracts, checked through the portal's own clients
(integrations.dingtalk, integrations.wecom).

By default against the stand-in (sandbox/chatrobots). To run the same tests against the real services
(never under CI, which always uses the stand-in), set:

- DINGTALK_CONFORMANCE_TOKEN, DINGTALK_CONFORMANCE_SECRET and DINGTALK_CONFORMANCE_KEYWORD: a test group's
  custom robot with 加签 and one custom keyword;
- WECOM_CONFORMANCE_KEY: a test group's robot key.

They post real messages to those groups, and the rate-limit tests (last in the file) leave the robot
throttled for a while. What only the stand-in can show (the recorded message, no attempt made) is asserted
when the stand-in is the target.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

import pytest

from integrations.dingtalk import DingTalkRobot
from integrations.errors import Invalid, RateLimited, Unauthorized
from integrations.wecom import WeComRobot
from sandbox.chatrobots import ChatRobotsStandin
from sandbox.ci import in_ci

KEYWORD = "告警"
DINGTALK_TOKEN = "dingtalk-conformance-token"
DINGTALK_SECRET = "SEC" + "c0ffee" * 10
WECOM_KEY = "693a91f6-7a0c-4bc4-97a0-0ec2sifa5aaa"
MOBILE = "13800001111"


@dataclass
class Target:
    dingtalk_base: str
    wecom_base: str
    token: str
    secret: str
    keyword: str
    key: str
    standin: ChatRobotsStandin | None  # None: the real services

    def dingtalk(self, **overrides) -> DingTalkRobot:
        settings = {"secret": self.secret, "keyword": self.keyword} | overrides
        token = settings.pop("token", self.token)
        return DingTalkRobot(self.dingtalk_base, token, **settings)

    def wecom(self, key: str | None = None) -> WeComRobot:
        return WeComRobot(self.wecom_base, key or self.key)


def _real_target() -> Target | None:
    env = os.environ
    if in_ci() or not (env.get("DINGTALK_CONFORMANCE_TOKEN") and env.get("WECOM_CONFORMANCE_KEY")):
        return None
    return Target(
        dingtalk_base="https://oapi.dingtalk.com",
        wecom_base="https://qyapi.weixin.qq.com",
        token=env["DINGTALK_CONFORMANCE_TOKEN"],
        secret=env.get("DINGTALK_CONFORMANCE_SECRET", ""),
        keyword=env.get("DINGTALK_CONFORMANCE_KEYWORD", ""),
        key=env["WECOM_CONFORMANCE_KEY"],
        standin=None,
    )


@pytest.fixture
def target(request) -> Target:
    real = _real_target()
    if real is not None:
        return real
    standin: ChatRobotsStandin = request.getfixturevalue("chatrobots_standin")
    standin.add_dingtalk_robot(DINGTALK_TOKEN, secret=DINGTALK_SECRET, keywords=[KEYWORD])
    standin.add_wecom_robot(WECOM_KEY)
    return Target(standin.url, standin.url, DINGTALK_TOKEN, DINGTALK_SECRET, KEYWORD, WECOM_KEY, standin)


def _text(target: Target, what: str) -> str:
    return f"{target.keyword or KEYWORD} conformance {what} {uuid.uuid4().hex[:8]}"


def _assert_refused(exc_info, cls, errcode: int) -> None:
    error = exc_info.value
    assert type(error) is cls, error
    assert error.details["errcode"] == errcode
    assert error.cause == error.details["errmsg"] != ""


# -- DingTalk -----------------------------------------------------------------------------------------


def test_dingtalk_signed_text_with_mentions_is_sent(target):
    content = _text(target, "text")
    target.dingtalk().send_text(content, at_mobiles=[MOBILE], at_user_ids=["manager7"])
    if target.standin:
        [message] = target.standin.messages(target.token)
        assert (message.msgtype, message.content, message.title) == ("text", content, "")
        assert message.at == {"mobiles": [MOBILE], "user_ids": ["manager7"], "all": False}


def test_dingtalk_markdown_names_its_mentions_in_the_text(target):
    text = f"#### {_text(target, 'markdown')}\n> go-hello **critical**"
    target.dingtalk().send_markdown(f"{KEYWORD} go-hello", text, at_mobiles=[MOBILE], at_all=True)
    if target.standin:
        [message] = target.standin.messages(target.token)
        assert message.msgtype == "markdown"
        assert message.title == f"{KEYWORD} go-hello"
        # DingTalk only highlights an @-mention in markdown when the text names it too.
        assert message.content == f"{text}\n\n@{MOBILE}"
        assert message.at == {"mobiles": [MOBILE], "user_ids": [], "all": True}


def test_dingtalk_wrong_secret_is_a_permanent_310000(target):
    if not target.secret:
        pytest.skip("the real robot has no 加签 secret (DINGTALK_CONFORMANCE_SECRET)")
    with pytest.raises(Unauthorized) as exc_info:
        target.dingtalk(secret="SEC" + "0" * 60).send_text(_text(target, "wrong secret"))
    _assert_refused(exc_info, Unauthorized, 310000)
    assert exc_info.value.permanent
    if target.standin:
        assert exc_info.value.cause == "sign not match"
        assert target.standin.messages() == []


def test_dingtalk_timestamp_over_an_hour_old_is_310000(target):
    if not target.secret:
        pytest.skip("the real robot has no 加签 secret (DINGTALK_CONFORMANCE_SECRET)")
    robot = target.dingtalk(clock=lambda: time.time() - 3600 - 120)
    with pytest.raises(Unauthorized) as exc_info:
        robot.send_text(_text(target, "old timestamp"))
    _assert_refused(exc_info, Unauthorized, 310000)
    if target.standin:
        assert exc_info.value.cause == "invalid timestamp"
        # Within the hour is still good: the window is DingTalk's clock ± 1 h, not a freshness check.
        target.dingtalk(clock=lambda: time.time() - 3600 + 120).send_text(_text(target, "59 minutes"))
        assert len(target.standin.messages()) == 1


def test_dingtalk_message_without_the_keyword_is_310000(target):
    if not target.keyword:
        pytest.skip("the real robot has no keyword (DINGTALK_CONFORMANCE_KEYWORD)")
    robot = target.dingtalk(keyword="")  # a channel that was not told the keyword cannot refuse locally
    with pytest.raises(Unauthorized) as exc_info:
        robot.send_text(f"conformance without the keyword {uuid.uuid4().hex[:8]}")
    _assert_refused(exc_info, Unauthorized, 310000)
    if target.standin:
        assert exc_info.value.cause == "keywords not in content"


def test_dingtalk_message_without_the_keyword_is_refused_before_sending(target):
    with pytest.raises(Invalid, match="keyword") as exc_info:
        target.dingtalk(keyword=KEYWORD).send_text("no key word here")
    assert exc_info.value.permanent
    if target.standin:
        assert target.standin.attempts() == []


def test_dingtalk_unknown_token_is_a_permanent_300005(target):
    robot = target.dingtalk(token=f"no-such-robot-{uuid.uuid4().hex}", secret="")
    with pytest.raises(Unauthorized) as exc_info:
        robot.send_text(_text(target, "unknown token"))
    _assert_refused(exc_info, Unauthorized, 300005)
    assert exc_info.value.permanent


# -- WeCom --------------------------------------------------------------------------------------------


def test_wecom_text_with_mentions_is_sent(target):
    content = _text(target, "wecom text")
    target.wecom().send_text(content, mentioned_list=["wangqing", "@all"], mentioned_mobile_list=[MOBILE])
    if target.standin:
        [message] = target.standin.messages(target.key)
        assert (message.system, message.msgtype, message.content) == ("wecom", "text", content)
        assert message.at == {"mobiles": [MOBILE], "user_ids": ["wangqing"], "all": True}


def test_wecom_markdown_is_sent(target):
    content = f'**{_text(target, "wecom markdown")}**\n> <font color="warning">critical</font> <@wangqing>'
    target.wecom().send_markdown(content)
    if target.standin:
        [message] = target.standin.messages(target.key)
        assert (message.msgtype, message.content) == ("markdown", content)


def test_wecom_unknown_key_is_a_permanent_93000(target):
    with pytest.raises(Unauthorized) as exc_info:
        target.wecom(key=str(uuid.uuid4())).send_text(_text(target, "bad key"))
    _assert_refused(exc_info, Unauthorized, 93000)
    assert exc_info.value.permanent


def test_wecom_text_at_the_byte_limit_is_sent_one_more_byte_is_refused_locally(target):
    at_limit = "警" * 682 + "ab"  # 682 × 3 + 2 = 2048 bytes of UTF-8
    target.wecom().send_text(at_limit)
    with pytest.raises(Invalid, match="2049 bytes of UTF-8; the limit is 2048"):
        target.wecom().send_text(at_limit + "c")
    if target.standin:
        assert [m.content for m in target.standin.messages()] == [at_limit]
        assert len(target.standin.attempts()) == 1


def test_wecom_markdown_over_4096_bytes_is_refused_locally(target):
    with pytest.raises(Invalid, match="4097 bytes of UTF-8; the limit is 4096"):
        target.wecom().send_markdown("告" * 1365 + "ab")  # 4095 + 2
    if target.standin:
        assert target.standin.attempts() == []


# -- 20 messages a minute (last: against the real services they leave the robot throttled) -----------


@pytest.mark.parametrize(("system", "errcode"), [("dingtalk", 130101), ("wecom", 45009)])
def test_21st_message_in_a_minute_is_a_transient_rate_limit_and_not_delivered(target, system, errcode):
    if system == "dingtalk":
        robot_id, send = target.token, target.dingtalk().send_text
    else:
        robot_id, send = target.key, target.wecom().send_markdown
    sent = 0
    with pytest.raises(RateLimited) as exc_info:
        for number in range(21):
            send(_text(target, f"burst {number}"))
            sent += 1
    _assert_refused(exc_info, RateLimited, errcode)
    assert not exc_info.value.permanent and exc_info.value.retry_after > 0
    if target.standin:
        assert sent == 20
        assert len(target.standin.messages(robot_id)) == 20  # the 21st was not recorded
