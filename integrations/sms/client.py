"""Alibaba Cloud SMS (Dysmsapi, API version 2017-05-25): ``SendSms`` signed with the RPC signature V1.

Written from Alibaba Cloud's documentation ("签名机制" / Signature mechanism for RPC APIs, the SendSms
reference and the SMS API error codes) instead of the SDK: the V1 signature is a few pure functions here,
and the sandbox's stand-in (sandbox/sms) verifies requests with the same ones.

The signature (``sign_v1``): every parameter except ``Signature``, sorted by name; names and values
percent-encoded per RFC 3986 in UTF-8 (only ``A-Z a-z 0-9 - _ . ~`` stay as they are, so a space is
``%20``, ``*`` is ``%2A`` and ``~`` is kept); joined as ``k=v&…``; ``StringToSign = "GET&%2F&" +
percent_encode(that query)``; ``Signature = base64(HMAC-SHA1(key = AccessKeySecret + "&", StringToSign))``.

Errors are the typed ones of ``integrations.errors``, with the service's ``Code``, ``Message`` and
``RequestId`` in ``details``:

- ``OK`` is success and ``send`` returns the ``BizId``;
- the per-number rate limit (``isv.BUSINESS_LIMIT_CONTROL``), throttling (``Throttling*``), a reused nonce
  (a retry signs with a new one) and 5xx/429 are transient (``ServerError``);
- a rejected key or signature is ``Unauthorized``; a bad number, a missing template variable, an
  unapproved sign name or template, an empty balance and the like are ``Invalid``: retrying cannot help,
  ops must fix the channel's configuration (or top up the account);
- a ``Code`` this module does not know is permanent too (a plain ``IntegrationError``), so an unknown
  refusal never turns into a retry storm of paid messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from integrations.errors import IntegrationError, Invalid, ServerError, Unauthorized
from integrations.http import make_session, transport_error

SYSTEM = "the SMS service"
API_VERSION = "2017-05-25"
DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"
DEFAULT_REGION = "cn-hangzhou"
# Alibaba advises a timeout of at least a second for mainland SMS; a slow answer is still an answer.
DEFAULT_TIMEOUT = (5.0, 15.0)
MAX_NUMBERS = 1000  # per SendSms call, as documented

# Codes the SMS service answers and what they mean for a sender; anything else is permanent.
TRANSIENT_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "SignatureNonceUsed",
        "ServiceUnavailable",
        "InternalError",
        "isp.SYSTEM_ERROR",
    }
)
UNAUTHORIZED_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "isp.RAM_PERMISSION_DENY",
        "Forbidden.RAM",
    }
)
INVALID_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.INVALID_JSON_PARAM",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.DAY_LIMIT_CONTROL",
        "isv.MONTH_LIMIT_CONTROL",
        "InvalidTimeStamp.Expired",
        "InvalidTimeStamp.Format",
    }
)
# What ops should do about a permanent refusal, shown on the channel (the service's Message is Chinese
# and terse).
_ADVICE = {
    "SignatureDoesNotMatch": "the AccessKey secret does not match the AccessKey ID",
    "InvalidAccessKeyId.NotFound": "the AccessKey ID does not exist",
    "InvalidAccessKeyId.Inactive": "the AccessKey is disabled",
    "isp.RAM_PERMISSION_DENY": "the AccessKey's RAM user may not send SMS (AliyunDysmsFullAccess)",
    "Forbidden.RAM": "the AccessKey's RAM user may not send SMS (AliyunDysmsFullAccess)",
    "isv.MOBILE_NUMBER_ILLEGAL": "a phone number is not valid",
    "isv.MOBILE_COUNT_OVER_LIMIT": f"more than {MAX_NUMBERS} phone numbers",
    "isv.TEMPLATE_MISSING_PARAMETERS": "the template needs a variable that was not given",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "a template variable holds a forbidden word",
    "isv.INVALID_JSON_PARAM": "the template variables are not a JSON object of strings",
    "isv.SMS_SIGNATURE_ILLEGAL": "the sign name is not approved for this account",
    "isv.SMS_TEMPLATE_ILLEGAL": "the template code is not approved for this account",
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": "the sign name may not be used with this kind of template",
    "isv.AMOUNT_NOT_ENOUGH": "the account balance is too low",
    "isv.OUT_OF_SERVICE": "the account is suspended (balance)",
    "isv.DAY_LIMIT_CONTROL": "the account's daily sending limit is reached",
    "isv.MONTH_LIMIT_CONTROL": "the account's monthly sending limit is reached",
    "InvalidTimeStamp.Expired": "this machine's clock is off by more than 15 minutes",
    "InvalidTimeStamp.Format": "the request's Timestamp is malformed",
}
# isv.BUSINESS_LIMIT_CONTROL says which window was hit ("触发分钟级流控Permits:1"); waiting less is useless.
_LIMIT_WINDOWS = (("分钟级", 60.0), ("小时级", 3600.0), ("天级", 86400.0))


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8 text as the V1 signature wants it: only ``A-Z a-z 0-9 - _ . ~``
    are left alone (``quote`` never keeps anything else when ``safe`` names only those)."""
    return quote(value, safe="-_.~", encoding="utf-8")


def canonical_query(params: Mapping[str, str]) -> str:
    """The sorted, encoded ``k=v&…`` of every parameter but ``Signature``."""
    return "&".join(
        f"{percent_encode(name)}={percent_encode(params[name])}"
        for name in sorted(params)
        if name != "Signature"
    )


def string_to_sign(params: Mapping[str, str], method: str = "GET") -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign_v1(params: Mapping[str, str], secret: str, method: str = "GET") -> str:
    """The ``Signature`` of a request with these parameters (base64 of HMAC-SHA1 keyed ``secret + "&"``)."""
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def utc_timestamp(at: float | None = None) -> str:
    """ISO 8601 in UTC to the second, the only Timestamp form the service accepts."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


def _limit_wait(message: str) -> float | None:
    for word, seconds in _LIMIT_WINDOWS:
        if word in message:
            return seconds
    return None


def error_from_answer(status: int, body: Mapping[str, Any]) -> IntegrationError:
    """The typed error for an answer that is not ``Code: OK`` (HTTP ``status``, JSON ``body``)."""
    code = str(body.get("Code") or "")
    message = str(body.get("Message") or "")
    details = {"Code": code, "Message": message, "RequestId": str(body.get("RequestId") or "")}
    kwargs: dict[str, Any] = {"cause": f"{code}: {message}" if code else f"HTTP {status}", "status": status}
    advice = _ADVICE.get(code, "")
    if code in TRANSIENT_CODES or code.startswith("Throttling") or status == 429 or status >= 500:
        retry_after = _limit_wait(message) if code == "isv.BUSINESS_LIMIT_CONTROL" else None
        return ServerError(
            f"{SYSTEM} asked to send later ({code or status})",
            details=details,
            retry_after=retry_after,
            **kwargs,
        )
    if code in UNAUTHORIZED_CODES:
        return Unauthorized(f"{SYSTEM} refused the AccessKey: {advice} ({code})", details=details, **kwargs)
    if code in INVALID_CODES:
        return Invalid(f"{SYSTEM} refused the message: {advice} ({code})", details=details, **kwargs)
    return IntegrationError(
        f"{SYSTEM} refused the message ({code or f'HTTP {status}'})", details=details, **kwargs
    )


class AliyunSms:
    """``SendSms`` of Alibaba Cloud SMS at ``endpoint`` (``https://dysmsapi.aliyuncs.com``)."""

    def __init__(
        self,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        *,
        region: str = DEFAULT_REGION,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoint or not access_key_id or not access_key_secret:
            raise Invalid("SMS is not configured (SMS_ENDPOINT, SMS_ACCESS_KEY_ID, SMS_ACCESS_KEY_SECRET)")
        self.endpoint = endpoint.rstrip("/")
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self.region = region
        self._session = make_session(timeout)
        self._session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:  # never the secret
        return f"AliyunSms({self.endpoint!r}, {self.access_key_id!r})"

    @classmethod
    def from_settings(cls) -> AliyunSms | None:
        """The configured client, or None when SMS is off (no SMS_ACCESS_KEY_ID)."""
        from django.conf import settings

        key_id = getattr(settings, "SMS_ACCESS_KEY_ID", "")
        if not key_id:
            return None
        return cls(
            getattr(settings, "SMS_ENDPOINT", DEFAULT_ENDPOINT),
            key_id,
            getattr(settings, "SMS_ACCESS_KEY_SECRET", ""),
            region=getattr(settings, "SMS_REGION", DEFAULT_REGION),
        )

    def signed_query(
        self, params: Mapping[str, str], *, nonce: str | None = None, at: float | None = None
    ) -> str:
        """The full query string of a call: ``params`` plus the common parameters, and the signature."""
        signed = {
            "AccessKeyId": self.access_key_id,
            "Format": "JSON",
            "RegionId": self.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "Timestamp": utc_timestamp(at),
            "Version": API_VERSION,
            **params,
        }
        return f"{canonical_query(signed)}&Signature={percent_encode(sign_v1(signed, self._secret))}"

    def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """One signed GET; the answer's JSON when its ``Code`` is ``OK``, else the typed error."""
        query = self.signed_query({"Action": action, **params})
        try:
            response = self._session.get(f"{self.endpoint}/?{query}")
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc, SYSTEM) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code == 429 or response.status_code >= 500:
                raise ServerError(
                    f"{SYSTEM} answered {response.status_code}",
                    status=response.status_code,
                    cause=response.text[:200],
                )
            raise IntegrationError(
                f"{SYSTEM} sent no JSON ({response.status_code})",
                status=response.status_code,
                cause=response.text[:200],
            )
        if response.status_code == 200 and body.get("Code") == "OK":
            return body
        raise error_from_answer(response.status_code, body)

    def send(
        self,
        *,
        phone_numbers: list[str],
        sign_name: str,
        template_code: str,
        template_param: dict[str, Any],
    ) -> str:
        """Send the approved template ``template_code`` under ``sign_name`` to the numbers; the ``BizId``.

        ``template_param`` fills the template's ``${var}``s; values are sent as strings, the only kind
        the service accepts. Not idempotent (the service is not): a caller that retries after a timeout
        may send twice.
        """
        numbers = [n.strip() for n in phone_numbers if n and n.strip()]
        if not numbers:
            raise Invalid("no phone number to send the SMS to")
        if len(numbers) > MAX_NUMBERS:
            raise Invalid(f"at most {MAX_NUMBERS} phone numbers per SMS")
        values = {str(name): "" if value is None else str(value) for name, value in template_param.items()}
        body = self.call(
            "SendSms",
            {
                "PhoneNumbers": ",".join(numbers),
                "SignName": sign_name,
                "TemplateCode": template_code,
                "TemplateParam": json.dumps(values, ensure_ascii=False, separators=(",", ":")),
            },
        )
        return str(body.get("BizId") or "")
