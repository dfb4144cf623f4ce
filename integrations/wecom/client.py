"""WeCom (企业微信) group robot (群机器人): ``POST /cgi-bin/webhook/send?key=…``. The key in the URL is the
only credential (no signing). Not Alertmanager's ``wechat_configs``, which is WeCom's application API.

Limits checked here before sending, with a clear error: text ≤ 2048 and markdown ≤ 4096 bytes of UTF-8,
no empty content. WeCom markdown cannot @ a mobile number; it names people with ``<@userid>`` in the text.

Every answer is HTTP 200 with ``errcode`` (errcode and errmsg in ``details`` and ``cause``):

- 0: sent.
- 45009 (``api freq out of limit``: over 20 messages a minute): ``RateLimited``, transient.
- -1 (system busy), HTTP 5xx: ``ServerError``; HTTP 429: ``RateLimited``; no answer: ``transport_error``.
- 93000 (invalid webhook url: a wrong or removed key): ``Unauthorized``, permanent.
- 40008 (invalid message type), 44004 (empty content), 40058 (bad parameter) and any other errcode:
  ``Invalid``, permanent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from integrations.chatrobot import DEFAULT_TIMEOUT, ErrcodeMeaning, check_size, error_from_errcode, post_robot
from integrations.errors import Invalid, RateLimited, Unauthorized
from integrations.http import make_session

SYSTEM = "WeCom"
TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 4096
RATE_LIMIT_RETRY_AFTER = 60.0  # WeCom counts 20 messages per robot per minute

SENT = 0
ERRCODES = {
    45009: ErrcodeMeaning(
        RateLimited, "WeCom refused: the robot sent over 20 messages in a minute", RATE_LIMIT_RETRY_AFTER
    ),
    93000: ErrcodeMeaning(
        Unauthorized, "WeCom does not know this robot key: it is wrong or the robot was removed"
    ),
    40008: ErrcodeMeaning(Invalid, "WeCom rejected the message type"),
    44004: ErrcodeMeaning(Invalid, "WeCom rejected an empty message"),
    40058: ErrcodeMeaning(Invalid, "WeCom rejected the message's parameters"),
}


class WeComRobot:
    def __init__(
        self, webhook_base: str, key: str, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT
    ) -> None:
        if not webhook_base or not key:
            raise Invalid("The WeCom robot needs a webhook base and a key")
        self.webhook_base = webhook_base.rstrip("/")
        self._key = key
        self._session = make_session(timeout)

    @classmethod
    def from_settings(cls, key: str) -> WeComRobot:
        from django.conf import settings

        return cls(settings.WECOM_WEBHOOK_BASE, key)

    def __repr__(self) -> str:  # the key is the credential: never in logs or tracebacks
        return f"<WeComRobot {self.webhook_base}>"

    def _send(self, body: dict[str, Any]) -> None:
        url = f"{self.webhook_base}/cgi-bin/webhook/send?key={quote(self._key, safe='')}"
        errcode, errmsg = post_robot(self._session, url, body, SYSTEM)
        if errcode != SENT:
            raise error_from_errcode(ERRCODES, errcode, errmsg, SYSTEM)

    def send_text(
        self, content: str, *, mentioned_list: Iterable[str] = (), mentioned_mobile_list: Iterable[str] = ()
    ) -> None:
        """``mentioned_list`` holds WeCom userids, ``mentioned_mobile_list`` mobile numbers; ``"@all"`` in
        either mentions everyone."""
        check_size(content, TEXT_MAX_BYTES, "The WeCom text")
        text: dict[str, Any] = {"content": content}
        if mentioned := list(mentioned_list):
            text["mentioned_list"] = mentioned
        if mobiles := list(mentioned_mobile_list):
            text["mentioned_mobile_list"] = mobiles
        self._send({"msgtype": "text", "text": text})

    def send_markdown(self, content: str) -> None:
        check_size(content, MARKDOWN_MAX_BYTES, "The WeCom markdown")
        self._send({"msgtype": "markdown", "markdown": {"content": content}})
