"""Alibaba Cloud SMS stand-in: ``SendSms`` (Dysmsapi 2017-05-25) as documented by Alibaba Cloud (the RPC
signature V1 "签名机制", the SendSms reference and the SMS API error codes). No SMS leaves the machine:
delivered messages are recorded for assertions.

What it honours (state in memory):
- ``GET /?Action=SendSms&…`` (and ``POST /`` with a form body), answers in JSON only.
- Authentication as the gateway does it, in this order: the common parameters present (400
  ``Missing<Name>``), ``Version`` 2017-05-25 (400 ``InvalidVersion``) and ``Action`` SendSms (404
  ``InvalidAction.NotFound``), a registered ``AccessKeyId`` (404 ``InvalidAccessKeyId.NotFound``),
  ``Timestamp`` in ``yyyy-MM-ddTHH:mm:ssZ`` (400 ``InvalidTimeStamp.Format``) within 15 minutes of the
  stand-in's clock (400 ``InvalidTimeStamp.Expired``), the V1 ``Signature`` computed with that key's
  secret (400 ``SignatureDoesNotMatch``, with the server's string-to-sign in the message as the real
  service gives it), and a ``SignatureNonce`` not seen in the window (400 ``SignatureNonceUsed``).
- The business checks answer HTTP 200 with a ``Code``: each number a mainland mobile (11 digits starting
  with 1[3-9], optionally prefixed +86 / 0086 / 86; ``isv.MOBILE_NUMBER_ILLEGAL``), at most 1000
  (``isv.MOBILE_COUNT_OVER_LIMIT``); an approved sign name (``isv.SMS_SIGNATURE_ILLEGAL``) and template
  (``isv.SMS_TEMPLATE_ILLEGAL``); ``TemplateParam`` a JSON object of strings (``isv.INVALID_JSON_PARAM``)
  with every ``${var}`` of the template (``isv.TEMPLATE_MISSING_PARAMETERS``); a balance, when one is set
  (``isv.AMOUNT_NOT_ENOUGH``); and the per-number rate limit for one sign name, by default 1 a minute and
  5 an hour (``isv.BUSINESS_LIMIT_CONTROL``, ``触发分钟级流控Permits:1`` / ``触发小时级流控Permits:5``).
  A call is all or nothing: one refused number refuses the call.
- Success: ``{"Code": "OK", "Message": "OK", "BizId": "…^0", "RequestId": "…"}`` and one recorded
  ``SmsMessage`` per number, with the rendered text ``【sign】template``.

Faults: ``set_outage(True)`` answers every call HTTP 500 ``InternalError`` until ``set_outage(False)``.
"""

from __future__ import annotations

import calendar
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from integrations.sms.client import API_VERSION, MAX_NUMBERS, sign_v1, string_to_sign
from sandbox.standin_http import DispatchingHandler, ThreadedStandin

HOST_ID = "dysmsapi.aliyuncs.com"
TIMESTAMP_WINDOW_SECONDS = 15 * 60
COMMON_PARAMS = (
    "AccessKeyId",
    "Action",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
)
_MAINLAND_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9]\d{9})")
_TEMPLATE_VAR = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class SmsMessage:
    phone_number: str  # the 11 digits, prefix removed
    sign_name: str
    template_code: str
    params: dict[str, str]
    text: str
    biz_id: str
    at: float = field(compare=False)


class SmsRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class SmsStandin(ThreadedStandin):
    """Serve ``SendSms`` on ``host:port`` (0 picks a free port) from a background thread.

    ``access_keys`` maps AccessKey IDs to secrets; ``sign_names`` are the approved signatures;
    ``templates`` maps approved template codes to their text with ``${var}``s. ``clock`` is the time the
    stand-in believes it is (tests move it to cross the rate-limit windows).
    """

    thread_name = "sms-standin"

    def __init__(
        self,
        access_keys: Mapping[str, str],
        *,
        sign_names: Iterable[str],
        templates: Mapping[str, str],
        per_minute: int = 1,
        per_hour: int = 5,
        balance: int | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_keys = dict(access_keys)
        self.sign_names = set(sign_names)
        self.templates = dict(templates)
        self.per_minute, self.per_hour = per_minute, per_hour
        self.balance = balance  # messages left; None = unlimited
        self.clock = clock
        self._host, self._port = host, port
        self.lock = threading.Lock()
        self.messages: list[SmsMessage] = []
        self.outage = False
        self._nonces: dict[str, float] = {}
        self._sent: dict[tuple[str, str], deque[float]] = {}  # (number, sign) -> send times in the last hour
        self._biz_ids = itertools.count(int(clock()) * 1000)

    root = "memory"

    def handler_class(self):
        return _Handler

    def set_outage(self, on: bool) -> None:
        """While on, every call answers HTTP 500 ``InternalError``, as the service in an outage."""
        self.outage = on

    def messages_to(self, phone_number: str) -> list[SmsMessage]:
        with self.lock:
            return [m for m in self.messages if m.phone_number == phone_number]

    # -- the API -------------------------------------------------------------------------------------

    def handle(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        """The answer body for one call; raises ``SmsRefused`` for an error answer."""
        if self.outage:
            raise SmsRefused(
                500, "InternalError", "The request processing has failed due to some unknown error."
            )
        for name in COMMON_PARAMS:
            if not params.get(name):
                raise SmsRefused(
                    400, f"Missing{name}", f'The input parameter "{name}" that is mandatory is not supplied.'
                )
        if params["Version"] != API_VERSION:
            raise SmsRefused(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params["Action"] != "SendSms":
            raise SmsRefused(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise SmsRefused(
                400, "InvalidParameter", "SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0."
            )
        if params.get("Format", "JSON").upper() != "JSON":
            raise SmsRefused(400, "InvalidParameter", "The stand-in answers Format=JSON only.")
        secret = self.access_keys.get(params["AccessKeyId"])
        if secret is None:
            raise SmsRefused(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            sent_at = calendar.timegm(time.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            raise SmsRefused(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            ) from None
        now = self.clock()
        if abs(now - sent_at) > TIMESTAMP_WINDOW_SECONDS:
            raise SmsRefused(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        signed = {k: v for k, v in params.items() if k != "Signature"}
        if params["Signature"] != sign_v1(signed, secret, method):
            raise SmsRefused(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(signed, method),
            )
        with self.lock:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t <= TIMESTAMP_WINDOW_SECONDS}
            nonce = f"{params['AccessKeyId']}\n{params['SignatureNonce']}"
            if nonce in self._nonces:
                raise SmsRefused(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces[nonce] = now
        return self._send_sms(params, now)

    def _send_sms(self, params: dict[str, str], now: float) -> dict[str, Any]:
        raw_numbers = [n.strip() for n in params.get("PhoneNumbers", "").split(",")]
        if len(raw_numbers) > MAX_NUMBERS:
            return _business("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        numbers = []
        for raw in raw_numbers:
            match = _MAINLAND_MOBILE.fullmatch(raw)
            if match is None:
                return _business("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            numbers.append(match.group(1))
        sign_name = params.get("SignName", "")
        if sign_name not in self.sign_names:
            return _business("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        template_code = params.get("TemplateCode", "")
        template = self.templates.get(template_code)
        if template is None:
            return _business("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            values = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return _business("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if any(name not in values for name in _TEMPLATE_VAR.findall(template)):
            return _business("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        text = f"【{sign_name}】" + _TEMPLATE_VAR.sub(lambda m: values[m.group(1)], template)
        with self.lock:
            if self.balance is not None and self.balance < len(numbers):
                return _business("isv.AMOUNT_NOT_ENOUGH", "账户余额不足")
            for number in numbers:
                sent = self._sent.setdefault((number, sign_name), deque())
                while sent and now - sent[0] >= 3600:
                    sent.popleft()
                if sum(1 for t in sent if now - t < 60) >= self.per_minute:
                    return _business("isv.BUSINESS_LIMIT_CONTROL", f"触发分钟级流控Permits:{self.per_minute}")
                if len(sent) >= self.per_hour:
                    return _business("isv.BUSINESS_LIMIT_CONTROL", f"触发小时级流控Permits:{self.per_hour}")
            biz_id = f"{next(self._biz_ids)}^0"
            for number in numbers:
                self._sent[(number, sign_name)].append(now)
                self.messages.append(SmsMessage(number, sign_name, template_code, values, text, biz_id, now))
            if self.balance is not None:
                self.balance -= len(numbers)
        return {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()}


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _business(code: str, message: str) -> dict[str, Any]:
    return {"Code": code, "Message": message, "RequestId": _request_id()}


class _Handler(DispatchingHandler):
    standin: SmsStandin

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        if method not in ("GET", "POST") or url.path != "/":
            self._answer(404, {"Code": "InvalidAction.NotFound", "Message": "Specified api is not found."})
            return
        query = url.query
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            query = "&".join(part for part in (query, body) if part)
        params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            self._answer(200, self.standin.handle(method, params))
        except SmsRefused as refused:
            self._answer(
                refused.status,
                {
                    "RequestId": _request_id(),
                    "HostId": HOST_ID,
                    "Code": refused.code,
                    "Message": refused.message,
                    "Recommend": f"https://api.aliyun.com/troubleshoot?q={refused.code}&product=Dysmsapi",
                },
            )

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
