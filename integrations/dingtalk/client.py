"""DingTalk custom robot (自定义机器人): one group chat's webhook, ``POST /robot/send?access_token=…``.

Security settings, as the robot's owner chose them in DingTalk: 加签 (``timestamp`` in milliseconds and
``sign``, see ``dingtalk_sign``), custom keywords (the message must contain one) and an IP allow-list.
A message without the configured keyword is refused here, before it costs one of the 20 messages a minute.

Every answer is HTTP 200 with ``errcode``; the mapping (errcode and errmsg in ``details`` and ``cause``):

- 0: sent.
- 130101 (``send too fast``: over 20 messages a minute; DingTalk then throttles the robot) and 90030
  (``webhook over limit``: the tenant's call quota): ``RateLimited``, transient, with ``retry_after``.
- -1 (system busy), HTTP 5xx: ``ServerError``; HTTP 429: ``RateLimited``; no answer: ``transport_error``.
- 310000 (``sign not match``, ``invalid timestamp``, ``keywords not in content``, ``ip … not in
  whitelist``) and 300005 (``token is not exist``): ``Unauthorized``, permanent: the channel's settings
  are wrong and retrying cannot help.
- 300001 (``param error``) and any other errcode: ``Invalid``, permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from integrations.chatrobot import DEFAULT_TIMEOUT, ErrcodeMeaning, check_size, error_from_errcode, post_robot
from integrations.errors import Invalid, RateLimited, Unauthorized
from integrations.http import make_session

SYSTEM = "DingTalk"
# DingTalk counts 20 messages per robot per minute; a throttled robot may stay so for longer, so the
# sender waits a whole window before the next try.
RATE_LIMIT_RETRY_AFTER = 60.0
# The quota is per month: trying again within the hour only burns attempts.
QUOTA_RETRY_AFTER = 3600.0

SENT = 0
ERRCODES = {
    130101: ErrcodeMeaning(
        RateLimited, "DingTalk refused: the robot sent over 20 messages in a minute", RATE_LIMIT_RETRY_AFTER
    ),
    90030: ErrcodeMeaning(
        RateLimited, "DingTalk refused: the robot is over its call quota", QUOTA_RETRY_AFTER
    ),
    310000: ErrcodeMeaning(
        Unauthorized,
        "DingTalk refused the robot's security check: check its signing secret, keyword, IP allow-list",
    ),
    300005: ErrcodeMeaning(Unauthorized, "DingTalk has no robot with this access token"),
    300001: ErrcodeMeaning(Invalid, "DingTalk rejected the message's parameters"),
}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The 加签 ``sign`` query value: URL-encoded base64 of HMAC-SHA256(key=secret, "timestamp\\nsecret")."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


class DingTalkRobot:
    def __init__(
        self,
        webhook_base: str,
        access_token: str,
        *,
        secret: str = "",
        keyword: str = "",
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not webhook_base or not access_token:
            raise Invalid("The DingTalk robot needs a webhook base and an access token")
        self.webhook_base = webhook_base.rstrip("/")
        self._access_token = access_token
        self._secret = secret
        self.keyword = keyword
        self._clock = clock  # the signing time; tests move it to prove the one-hour window
        self._session = make_session(timeout)

    @classmethod
    def from_settings(cls, access_token: str, *, secret: str = "", keyword: str = "") -> DingTalkRobot:
        from django.conf import settings

        return cls(settings.DINGTALK_WEBHOOK_BASE, access_token, secret=secret, keyword=keyword)

    def __repr__(self) -> str:  # the token is the credential: never in logs or tracebacks
        return f"<DingTalkRobot {self.webhook_base} signed={bool(self._secret)}>"

    def _url(self) -> str:
        # Built by hand: the sign is already URL-encoded, and requests' params= would encode it again.
        url = f"{self.webhook_base}/robot/send?access_token={quote(self._access_token, safe='')}"
        if self._secret:
            timestamp_ms = round(self._clock() * 1000)
            url += f"&timestamp={timestamp_ms}&sign={dingtalk_sign(self._secret, timestamp_ms)}"
        return url

    def _send(self, body: dict[str, Any], *searched: str) -> None:
        if self.keyword and not any(self.keyword in text for text in searched):
            raise Invalid(
                f"The message lacks the robot's keyword {self.keyword!r}; DingTalk would refuse it",
                causes=[{"field": "content", "message": f"missing keyword {self.keyword!r}"}],
            )
        errcode, errmsg = post_robot(self._session, self._url(), body, SYSTEM)
        if errcode != SENT:
            raise error_from_errcode(ERRCODES, errcode, errmsg, SYSTEM)

    def send_text(
        self,
        content: str,
        *,
        at_mobiles: Iterable[str] = (),
        at_user_ids: Iterable[str] = (),
        at_all: bool = False,
    ) -> None:
        check_size(content, None, "The DingTalk text")
        body = {
            "msgtype": "text",
            "text": {"content": content},
            "at": _at(at_mobiles, at_user_ids, at_all),
        }
        self._send(body, content)

    def send_markdown(
        self,
        title: str,
        text: str,
        *,
        at_mobiles: Iterable[str] = (),
        at_user_ids: Iterable[str] = (),
        at_all: bool = False,
    ) -> None:
        """``title`` is what the notification shows; ``text`` the message. DingTalk only highlights an
        @-mention in markdown when the text names it too, so missing ``@…`` are appended."""
        if not title.strip():
            raise Invalid("The DingTalk markdown message needs a title")
        check_size(text, None, "The DingTalk markdown text")
        at = _at(at_mobiles, at_user_ids, at_all)
        missing = [f"@{who}" for who in at["atMobiles"] + at["atUserIds"] if f"@{who}" not in text]
        if missing:
            text = f"{text}\n\n{' '.join(missing)}"
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}
        self._send(body, title, text)


def _at(mobiles: Iterable[str], user_ids: Iterable[str], at_all: bool) -> dict[str, Any]:
    return {"atMobiles": list(mobiles), "atUserIds": list(user_ids), "isAtAll": bool(at_all)}
