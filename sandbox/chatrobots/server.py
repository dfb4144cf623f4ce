"""One stand-in for the two chat robots alerts go to, written from their public contracts (DingTalk's
custom-robot and WeCom's group-robot documentation; docs/sandbox.md lists what is honoured):

- DingTalk: ``POST /robot/send?access_token=…[&timestamp=…&sign=…]``. A robot is registered with its
  token, an optional 加签 secret and optional keywords. The token must exist (300005 ``token is not
  exist``); with a secret, ``timestamp`` (ms) must be within an hour of the stand-in's clock (310000
  ``invalid timestamp``) and ``sign`` must match (310000 ``sign not match``); with keywords, the message
  must contain one (310000 ``keywords not in content``); the body must be a well-formed ``text`` or
  ``markdown`` message (300001 ``param error``).
- WeCom: ``POST /cgi-bin/webhook/send?key=…``. The key must be registered (93000); ``msgtype`` must be
  ``text`` or ``markdown`` (40008), the content present (44004) and within 2048 / 4096 UTF-8 bytes, the
  mention lists lists of strings (40058).
- Both: 20 accepted messages per robot in any 60 seconds; the 21st is answered with the real errcode
  (DingTalk 130101, WeCom 45009) and not recorded. Every answer is HTTP 200 with ``errcode``/``errmsg``,
  as the real services answer.

Accepted messages are recorded (``messages()``) and every attempt, refused or not, too (``attempts()``),
so tests can assert what reached a group and that a permanent error was not retried. Faults:
``set_outage(True)`` answers every send with HTTP 500 (or the status given); ``inject_errcode(robot,
errcode)`` answers the next sends to one robot with that errcode (90030, -1, …). The clock is
``self.clock`` (seconds), which tests may replace to move past the rate-limit window or the signature's
hour without sleeping.

``GET /_standin/messages`` lists what was accepted and ``POST``/``DELETE /_standin/outage`` switches the
outage, for another process (`make run`). Loopback only: the stand-in refuses to listen elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.standin_http import DispatchingHandler, ThreadedStandin

RATE_LIMIT = 20
RATE_WINDOW_SECONDS = 60.0
DINGTALK_TIMESTAMP_WINDOW_MS = 3_600_000
WECOM_TEXT_MAX_BYTES = 2048
WECOM_MARKDOWN_MAX_BYTES = 4096

DINGTALK = "dingtalk"
WECOM = "wecom"


class Refused(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class RobotMessage:
    """One accepted message. ``at`` is ``{"mobiles": [...], "user_ids": [...], "all": bool}`` for both
    robots (WeCom's ``"@all"`` entries become ``all``)."""

    system: str
    robot: str
    msgtype: str
    content: str
    title: str
    at: dict[str, Any]
    time: float
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Attempt:
    system: str
    robot: str
    errcode: int
    time: float


@dataclass
class _DingTalkRobot:
    secret: str
    keywords: tuple[str, ...]


class ChatRobotsStandin(ThreadedStandin):
    """Serve both robots on ``host:port`` (0 picks a free port) from a background thread."""

    thread_name = "chatrobots-standin"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = RATE_LIMIT,
        rate_window: float = RATE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the chat-robot stand-in listens on loopback only, not {host}")
        self._host, self._port = host, port
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.clock = clock
        self.lock = threading.Lock()
        self.outage, self.outage_status = False, 500
        self._dingtalk: dict[str, _DingTalkRobot] = {}
        self._wecom: set[str] = set()
        self._sent: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._injected: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
        self._messages: list[RobotMessage] = []
        self._attempts: list[Attempt] = []

    root = "memory"  # what serve_until_interrupted announces: nothing is kept on disk

    def handler_class(self):
        return _Handler

    # -- set-up and assertions --------------------------------------------------------------------------

    def add_dingtalk_robot(
        self, access_token: str, *, secret: str = "", keywords: Iterable[str] = ()
    ) -> None:
        with self.lock:
            self._dingtalk[access_token] = _DingTalkRobot(secret, tuple(k for k in keywords if k))

    def add_wecom_robot(self, key: str) -> None:
        with self.lock:
            self._wecom.add(key)

    def messages(self, robot: str | None = None) -> list[RobotMessage]:
        with self.lock:
            return [m for m in self._messages if robot in (None, m.robot)]

    def attempts(self, robot: str | None = None) -> list[Attempt]:
        with self.lock:
            return [a for a in self._attempts if robot in (None, a.robot)]

    def set_outage(self, on: bool, status: int = 500) -> None:
        """While on, every send answers HTTP ``status`` (500: a robot service that is down; 429 or 502
        from a gateway in front of it)."""
        self.outage, self.outage_status = on, status

    def inject_errcode(self, robot: str, errcode: int, errmsg: str = "injected", count: int = 1) -> None:
        """Answer the next ``count`` sends to ``robot`` (a DingTalk token or WeCom key) with ``errcode``."""
        with self.lock:
            self._injected[robot].extend([(errcode, errmsg)] * count)

    # -- the two contracts ------------------------------------------------------------------------------

    def _take_injected(self, robot: str) -> None:
        with self.lock:
            queue = self._injected.get(robot)
            if queue:
                raise Refused(*queue.popleft())

    def _accept(self, system: str, robot: str, message: dict[str, Any], limit_errcode: int, limit_msg: str):
        """Record ``message`` unless the robot already sent ``rate_limit`` in the window."""
        with self.lock:
            now = self.clock()
            sent = self._sent[(system, robot)]
            while sent and sent[0] <= now - self.rate_window:
                sent.popleft()
            if len(sent) >= self.rate_limit:
                raise Refused(limit_errcode, limit_msg)
            sent.append(now)
            self._messages.append(RobotMessage(system=system, robot=robot, time=now, **message))

    def dingtalk_send(self, query: dict[str, list[str]], raw: bytes) -> None:
        token = _one(query, "access_token")
        with self.lock:
            robot = self._dingtalk.get(token)
        if robot is None:
            raise Refused(300005, "token is not exist")
        self._take_injected(token)
        if robot.secret:
            self._check_sign(robot.secret, _one(query, "timestamp"), _one(query, "sign"))
        body = _json_object(raw, Refused(300001, "param error"))
        message = _dingtalk_message(body)
        if robot.keywords:
            searched = message["content"] + "\n" + message["title"]
            if not any(keyword in searched for keyword in robot.keywords):
                raise Refused(310000, "keywords not in content")
        self._accept(DINGTALK, token, message, 130101, "send too fast, exceed 20 times per minute")

    def _check_sign(self, secret: str, timestamp: str, sign: str) -> None:
        if not timestamp.isdigit():
            raise Refused(310000, "invalid timestamp")
        if abs(self.clock() * 1000 - int(timestamp)) > DINGTALK_TIMESTAMP_WINDOW_MS:
            raise Refused(310000, "invalid timestamp")
        # Recomputed here rather than imported: the stand-in checks the client, it must not share its code.
        expected = base64.b64encode(
            hmac.new(secret.encode(), (timestamp + "\n" + secret).encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), sign.encode()):
            raise Refused(310000, "sign not match")

    def wecom_send(self, query: dict[str, list[str]], raw: bytes) -> None:
        key = _one(query, "key")
        with self.lock:
            known = key in self._wecom
        if not known:
            raise Refused(93000, "invalid webhook url, hint: [stand-in] key not registered")
        self._take_injected(key)
        body = _json_object(raw, Refused(40058, "Warning: wrong json format"))
        message = _wecom_message(body)
        self._accept(WECOM, key, message, 45009, "api freq out of limit")

    def record_attempt(self, system: str, robot: str, errcode: int) -> None:
        with self.lock:
            self._attempts.append(Attempt(system, robot, errcode, self.clock()))


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0]


def _json_object(raw: bytes, refusal: Refused) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise refusal from None
    if not isinstance(body, dict):
        raise refusal
    return body


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _dingtalk_message(body: dict[str, Any]) -> dict[str, Any]:
    bad = Refused(300001, "param error")
    at = body.get("at") or {}
    if not isinstance(at, dict):
        raise bad
    mobiles, user_ids = at.get("atMobiles") or [], at.get("atUserIds") or []
    if not _strings(mobiles) or not _strings(user_ids) or not isinstance(at.get("isAtAll", False), bool):
        raise bad
    mentions = {"mobiles": mobiles, "user_ids": user_ids, "all": bool(at.get("isAtAll"))}
    msgtype = body.get("msgtype")
    part = body.get(msgtype) if isinstance(msgtype, str) else None
    if not isinstance(part, dict):
        raise bad
    if msgtype == "text" and isinstance(part.get("content"), str) and part["content"].strip():
        content, title = part["content"], ""
    elif msgtype == "markdown" and all(
        isinstance(part.get(k), str) and part[k].strip() for k in ("title", "text")
    ):
        content, title = part["text"], part["title"]
    else:
        raise bad  # also link, actionCard and feedCard, which DingTalk takes but the portal never sends
    return {"msgtype": msgtype, "content": content, "title": title, "at": mentions, "body": body}


def _wecom_message(body: dict[str, Any]) -> dict[str, Any]:
    msgtype = body.get("msgtype")
    limits = {"text": WECOM_TEXT_MAX_BYTES, "markdown": WECOM_MARKDOWN_MAX_BYTES}
    if msgtype not in limits:
        raise Refused(
            40008, "invalid message type"
        )  # news, image, file…: WeCom takes them, the portal never sends them
    part = body.get(msgtype)
    content = part.get("content") if isinstance(part, dict) else None
    if not isinstance(content, str) or not content:
        raise Refused(44004, "empty content")
    if len(content.encode("utf-8")) > limits[msgtype]:
        raise Refused(40058, f"{msgtype}.content exceed max length {limits[msgtype]}")
    user_ids, mobiles = part.get("mentioned_list") or [], part.get("mentioned_mobile_list") or []
    if not _strings(user_ids) or not _strings(mobiles):
        raise Refused(40058, "invalid Request Parameter")
    mentions = {
        "mobiles": [m for m in mobiles if m != "@all"],
        "user_ids": [u for u in user_ids if u != "@all"],
        "all": "@all" in user_ids or "@all" in mobiles,
    }
    return {"msgtype": msgtype, "content": content, "title": "", "at": mentions, "body": body}


class _Handler(DispatchingHandler):
    standin: ChatRobotsStandin
    protocol_version = "HTTP/1.1"
    server_version = "chatrobots-standin"

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = parse_qs(split.query, keep_blank_values=True)
        robots = {"/robot/send": DINGTALK, "/cgi-bin/webhook/send": WECOM}
        system = robots.get(split.path)
        if split.path.startswith("/_standin/"):
            self._admin(method, split.path)
            return
        if system is None or method != "POST":
            self._send_json(404, {"errcode": 404, "errmsg": "请求的URI地址不存在"})
            return
        robot = _one(query, "access_token" if system == DINGTALK else "key")
        if self.standin.outage:
            status = self.standin.outage_status
            self.standin.record_attempt(system, robot, -status)  # negative: an HTTP status, no errcode
            self._send_json(status, {"errcode": -1, "errmsg": "stand-in outage"})
            return
        s = self.standin
        try:
            (s.dingtalk_send if system == DINGTALK else s.wecom_send)(query, raw)
        except Refused as refused:
            s.record_attempt(system, robot, refused.errcode)
            self._send_json(200, {"errcode": refused.errcode, "errmsg": refused.errmsg})
            return
        s.record_attempt(system, robot, 0)
        self._send_json(200, {"errcode": 0, "errmsg": "ok"})

    def _admin(self, method: str, path: str) -> None:
        if path == "/_standin/messages" and method == "GET":
            messages = [asdict(m) for m in self.standin.messages()]
            for message in messages:
                message.pop("body")
            self._send_json(200, {"messages": messages})
        elif path == "/_standin/outage" and method in ("POST", "DELETE"):
            self.standin.set_outage(method == "POST")
            self._send_json(200, {"outage": self.standin.outage})
        else:
            self._send_json(404, {"errcode": 404, "errmsg": "not found"})
