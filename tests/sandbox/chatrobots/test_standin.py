"""The chat-robot stand-in's own behaviour, beyond the contract (test_contract.py): what it refuses on the
wire, its rate-limit window and clock, the records tests assert on, the outage switch and its admin
endpoints."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from integrations.dingtalk import DingTalkRobot, dingtalk_sign
from integrations.errors import Unauthorized
from integrations.wecom import WeComRobot
from sandbox.chatrobots import ChatRobotsStandin

TOKEN = "standin-token"
SECRET = "SEC0123456789abcdef"
KEY = "standin-key"


@pytest.fixture
def standin(chatrobots_standin: ChatRobotsStandin) -> ChatRobotsStandin:
    chatrobots_standin.add_dingtalk_robot(TOKEN)
    chatrobots_standin.add_wecom_robot(KEY)
    return chatrobots_standin


def _dingtalk(standin: ChatRobotsStandin, body, **query) -> dict:
    params = {"access_token": TOKEN} | query
    return requests.post(f"{standin.url}/robot/send", params=params, json=body, timeout=10).json()


def _wecom(standin: ChatRobotsStandin, body) -> dict:
    return requests.post(
        f"{standin.url}/cgi-bin/webhook/send", params={"key": KEY}, json=body, timeout=10
    ).json()


@pytest.mark.parametrize(
    "body",
    [
        {"msgtype": "text", "text": {"content": ""}},
        {"msgtype": "text", "text": "not an object"},
        {"msgtype": "markdown", "markdown": {"text": "no title"}},
        {"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "http://x"}},
        {"msgtype": "text", "text": {"content": "hi"}, "at": {"atMobiles": "13800001111"}},
        {"msgtype": "text", "text": {"content": "hi"}, "at": {"isAtAll": "yes"}},
        ["msgtype", "text"],
    ],
)
def test_dingtalk_malformed_body_is_300001_and_not_recorded(standin, body):
    assert _dingtalk(standin, body) == {"errcode": 300001, "errmsg": "param error"}
    assert standin.messages() == []
    assert [a.errcode for a in standin.attempts(TOKEN)] == [300001]


def test_dingtalk_signed_robot_needs_timestamp_and_sign(standin):
    standin.add_dingtalk_robot(TOKEN, secret=SECRET)
    body = {"msgtype": "text", "text": {"content": "hi"}}
    now_ms = round(standin.clock() * 1000)
    assert _dingtalk(standin, body)["errmsg"] == "invalid timestamp"
    assert _dingtalk(standin, body, timestamp=str(now_ms))["errmsg"] == "sign not match"
    # requests encodes the params itself, so it gets the plain base64 (the client sends it pre-encoded).
    plain = requests.utils.unquote(dingtalk_sign(SECRET, now_ms))
    assert _dingtalk(standin, body, timestamp=str(now_ms), sign=plain) == {"errcode": 0, "errmsg": "ok"}


def test_dingtalk_keyword_may_be_in_the_markdown_title(standin):
    standin.add_dingtalk_robot(TOKEN, keywords=["告警", "alert"])
    body = {"msgtype": "markdown", "markdown": {"title": "alert: go-hello", "text": "5xx > 5%"}}
    assert _dingtalk(standin, body)["errcode"] == 0
    assert _dingtalk(standin, {"msgtype": "text", "text": {"content": "5xx > 5%"}})["errcode"] == 310000


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"msgtype": "news", "news": {"articles": []}}, 40008),
        ({"msgtype": "text", "text": {"content": ""}}, 44004),
        ({"msgtype": "markdown", "markdown": {}}, 44004),
        ({"msgtype": "markdown", "markdown": {"content": "x" * 4097}}, 40058),
        ({"msgtype": "text", "text": {"content": "x" * 2049}}, 40058),
        ({"msgtype": "text", "text": {"content": "hi", "mentioned_list": "@all"}}, 40058),
    ],
)
def test_wecom_malformed_body_is_refused_with_its_errcode(standin, body, errcode):
    assert _wecom(standin, body)["errcode"] == errcode
    assert standin.messages() == []


def test_rate_limit_is_per_robot_and_per_sliding_minute(standin):
    now = [1_800_000_000.0]
    standin.clock = lambda: now[0]
    robot = DingTalkRobot(standin.url, TOKEN)
    for _ in range(20):
        robot.send_text("one of twenty")
        now[0] += 1
    assert _dingtalk(standin, {"msgtype": "text", "text": {"content": "21st"}})["errcode"] == 130101
    # Another robot has its own twenty.
    assert _wecom(standin, {"msgtype": "text", "text": {"content": "wecom"}})["errcode"] == 0
    now[0] = 1_800_000_060.0  # the first message left the window, the other nineteen are still in it
    robot.send_text("room for one")
    assert _dingtalk(standin, {"msgtype": "text", "text": {"content": "22nd"}})["errcode"] == 130101
    assert len(standin.messages(TOKEN)) == 21
    assert [a.errcode for a in standin.attempts(TOKEN)].count(130101) == 2


def test_outage_answers_500_and_records_nothing_until_switched_off(standin):
    standin.set_outage(True)
    response = requests.post(f"{standin.url}/robot/send", params={"access_token": TOKEN}, json={}, timeout=10)
    assert response.status_code == 500
    standin.set_outage(False)
    assert _dingtalk(standin, {"msgtype": "text", "text": {"content": "back"}})["errcode"] == 0
    assert [m.content for m in standin.messages()] == ["back"]
    assert [a.errcode for a in standin.attempts()] == [-500, 0]


def test_admin_endpoints_list_messages_and_switch_the_outage(standin):
    _wecom(standin, {"msgtype": "text", "text": {"content": "hello", "mentioned_mobile_list": ["@all"]}})
    listed = requests.get(f"{standin.url}/_standin/messages", timeout=10).json()["messages"]
    assert [(m["system"], m["robot"], m["content"], m["at"]["all"]) for m in listed] == [
        ("wecom", KEY, "hello", True)
    ]
    assert requests.post(f"{standin.url}/_standin/outage", timeout=10).json() == {"outage": True}
    assert standin.outage
    assert requests.delete(f"{standin.url}/_standin/outage", timeout=10).json() == {"outage": False}


def test_unknown_path_is_404():
    standin = ChatRobotsStandin()
    standin.start()
    try:
        assert requests.post(f"{standin.url}/robot/other", timeout=10).status_code == 404
        assert requests.get(f"{standin.url}/robot/send", timeout=10).status_code == 404
    finally:
        standin.stop()


def test_listens_on_loopback_only():
    with pytest.raises(ValueError, match="loopback only"):
        ChatRobotsStandin(host="192.0.2.1")  # TEST-NET: never bound, refused first


def test_cli_serves_the_robots_it_is_given():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.chatrobots",
            "serve",
            "--dingtalk",
            f"cli-token:{SECRET}:告警",
            "--wecom",
            KEY,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line).group(1)
        DingTalkRobot(url, "cli-token", secret=SECRET, keyword="告警").send_text("告警 from the CLI")
        with pytest.raises(Unauthorized):  # a client told no keyword sends; the stand-in refuses (310000)
            DingTalkRobot(url, "cli-token", secret=SECRET).send_text("no keyword")
        WeComRobot(url, KEY).send_text("from the CLI")
        listed = requests.get(f"{url}/_standin/messages", timeout=10).json()["messages"]
        assert [m["content"] for m in listed] == ["告警 from the CLI", "from the CLI"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0  # SIGTERM ends it as cleanly as Ctrl-C
