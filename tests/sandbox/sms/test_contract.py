"""Alibaba Cloud SMS's SendSms contract, checked through the portal's own client (integrations.sms).

By default against the stand-in (sandbox/sms). Outside CI, setting SMS_CONFORMANCE_ACCESS_KEY_ID,
SMS_CONFORMANCE_ACCESS_KEY_SECRET, SMS_CONFORMANCE_SIGN_NAME, SMS_CONFORMANCE_TEMPLATE_CODE and
SMS_CONFORMANCE_TEMPLATE_PARAM (a JSON object filling that template) runs the same tests against the real
service (SMS_CONFORMANCE_ENDPOINT, default https://dysmsapi.aliyuncs.com). Only the refusals are free; the
one test that really sends a message runs only when SMS_CONFORMANCE_PHONE names a phone to send it to.
Under CI the stand-in is always used: the suite never spends money or depends on Alibaba Cloud.
The stand-in's own extras (rate limit, outage, nonce and timestamp checks) are in test_standin.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from integrations.errors import Invalid, Unauthorized
from integrations.sms.client import DEFAULT_ENDPOINT, AliyunSms
from sandbox.ci import in_ci
from tests.fixtures.alerting import (
    SMS_ACCESS_KEY_ID,
    SMS_ACCESS_KEY_SECRET,
    SMS_SIGN_NAME,
    SMS_TEMPLATE_CODE,
    SMS_TEMPLATE_PARAM,
)

REAL = bool(os.environ.get("SMS_CONFORMANCE_ACCESS_KEY_ID")) and not in_ci()


@dataclass
class Target:
    endpoint: str
    key_id: str
    secret: str
    sign_name: str
    template_code: str
    template_param: dict
    phone: str  # where a real message may go; "" = do not send one
    standin: object | None = None

    def client(self, *, key_id: str | None = None, secret: str | None = None) -> AliyunSms:
        return AliyunSms(self.endpoint, key_id or self.key_id, secret or self.secret)

    def send(self, client: AliyunSms | None = None, **overrides) -> str:
        args = {
            "phone_numbers": [self.phone or "13800138000"],
            "sign_name": self.sign_name,
            "template_code": self.template_code,
            "template_param": dict(self.template_param),
            **overrides,
        }
        return (client or self.client()).send(**args)

    def recorded(self) -> int:
        return len(self.standin.messages) if self.standin is not None else 0


@pytest.fixture
def target(request) -> Target:
    if REAL:
        env = os.environ
        return Target(
            env.get("SMS_CONFORMANCE_ENDPOINT", DEFAULT_ENDPOINT),
            env["SMS_CONFORMANCE_ACCESS_KEY_ID"],
            env["SMS_CONFORMANCE_ACCESS_KEY_SECRET"],
            env["SMS_CONFORMANCE_SIGN_NAME"],
            env["SMS_CONFORMANCE_TEMPLATE_CODE"],
            json.loads(env["SMS_CONFORMANCE_TEMPLATE_PARAM"]),
            env.get("SMS_CONFORMANCE_PHONE", ""),
        )
    standin = request.getfixturevalue("sms_standin")
    return Target(
        standin.url,
        SMS_ACCESS_KEY_ID,
        SMS_ACCESS_KEY_SECRET,
        SMS_SIGN_NAME,
        SMS_TEMPLATE_CODE,
        SMS_TEMPLATE_PARAM,
        "",
        standin,
    )


def _assert_refusal(error, code: str, status: int) -> None:
    assert error.details["Code"] == code
    assert error.details["RequestId"]
    assert error.details["Message"]
    assert error.status == status
    assert error.permanent


def test_a_correctly_signed_message_is_sent(target):
    if REAL and not target.phone:
        pytest.skip("set SMS_CONFORMANCE_PHONE to let this test send a real message")
    biz_id = target.send()
    assert biz_id
    if target.standin is not None:
        (message,) = target.standin.messages
        assert message.phone_number == "13800138000"
        assert message.template_code == SMS_TEMPLATE_CODE
        assert message.params == SMS_TEMPLATE_PARAM
        assert message.biz_id == biz_id
        assert (
            message.text
            == "【运维平台】go-hello prod critical告警：5xx 错误率 > 5%，详情 https://ops.example.com/a/1"
        )


def test_a_wrong_secret_is_signature_does_not_match(target):
    with pytest.raises(Unauthorized) as refused:
        target.send(target.client(secret=target.secret + "x"))
    _assert_refusal(refused.value, "SignatureDoesNotMatch", 400)
    assert target.recorded() == 0


def test_an_unknown_access_key_is_not_found(target):
    with pytest.raises(Unauthorized) as refused:
        target.send(target.client(key_id="LTAInoSuchKey0000000000"))
    _assert_refusal(refused.value, "InvalidAccessKeyId.NotFound", 404)


@pytest.mark.parametrize("number", ["12345", "23800138000", "1380013800a", "+1 13800138000"])
def test_a_bad_number_is_refused(target, number):
    with pytest.raises(Invalid) as refused:
        target.send(phone_numbers=[number])
    _assert_refusal(refused.value, "isv.MOBILE_NUMBER_ILLEGAL", 200)
    assert target.recorded() == 0


def test_a_missing_template_variable_is_refused(target):
    params = dict(target.template_param)
    params.pop(sorted(params)[0])
    with pytest.raises(Invalid) as refused:
        target.send(template_param=params)
    _assert_refusal(refused.value, "isv.TEMPLATE_MISSING_PARAMETERS", 200)


def test_an_unapproved_sign_name_is_refused(target):
    with pytest.raises(Invalid) as refused:
        target.send(sign_name="未审核的签名")
    _assert_refusal(refused.value, "isv.SMS_SIGNATURE_ILLEGAL", 200)


def test_an_unapproved_template_is_refused(target):
    with pytest.raises(Invalid) as refused:
        target.send(template_code="SMS_000000001")
    _assert_refusal(refused.value, "isv.SMS_TEMPLATE_ILLEGAL", 200)
