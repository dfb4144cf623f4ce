"""The SMS stand-in's own behaviour beyond the shared contract (test_contract.py): the per-number rate
limit, the outage switch, replay protection (timestamp window, nonce), numbers, JSON and balance checks,
all through the portal's client or requests it signs."""

from __future__ import annotations

import json
import time

import pytest
import requests

from integrations.errors import Invalid, ServerError, Unauthorized
from integrations.sms.client import AliyunSms, percent_encode, sign_v1
from tests.fixtures.alerting import (
    SMS_ACCESS_KEY_ID,
    SMS_ACCESS_KEY_SECRET,
    SMS_SIGN_NAME,
    SMS_TEMPLATE_CODE,
    SMS_TEMPLATE_PARAM,
)


@pytest.fixture
def client(sms_standin) -> AliyunSms:
    return AliyunSms(sms_standin.url, SMS_ACCESS_KEY_ID, SMS_ACCESS_KEY_SECRET)


def _send(client: AliyunSms, number: str = "13800138000", **overrides) -> str:
    args = {
        "phone_numbers": [number],
        "sign_name": SMS_SIGN_NAME,
        "template_code": SMS_TEMPLATE_CODE,
        "template_param": SMS_TEMPLATE_PARAM,
        **overrides,
    }
    return client.send(**args)


def _sms_params(**overrides) -> dict[str, str]:
    return {
        "Action": "SendSms",
        "PhoneNumbers": "13800138000",
        "SignName": SMS_SIGN_NAME,
        "TemplateCode": SMS_TEMPLATE_CODE,
        "TemplateParam": json.dumps(SMS_TEMPLATE_PARAM, ensure_ascii=False),
        **overrides,
    }


def _raw_get(standin, query: str) -> tuple[int, dict]:
    response = requests.get(f"{standin.url}/?{query}", timeout=10)
    return response.status_code, response.json()


def test_second_message_to_a_number_within_a_minute_is_rate_limited(sms_standin, client):
    _send(client)
    with pytest.raises(ServerError) as limited:
        _send(client)
    error = limited.value
    assert not error.permanent
    assert error.details["Code"] == "isv.BUSINESS_LIMIT_CONTROL"
    assert error.details["Message"] == "触发分钟级流控Permits:1"
    assert error.retry_after == 60
    assert len(sms_standin.messages_to("13800138000")) == 1
    _send(client, "13900139000")  # the limit is per number
    sms_standin.clock.advance(61)
    _send(client)
    assert len(sms_standin.messages_to("13800138000")) == 2


def test_sixth_message_within_an_hour_is_rate_limited(sms_standin, client):
    for _ in range(5):
        _send(client, "+8613700137000")
        sms_standin.clock.advance(61)
    with pytest.raises(ServerError) as limited:
        _send(client, "13700137000")
    assert limited.value.details["Message"] == "触发小时级流控Permits:5"
    assert limited.value.retry_after == 3600
    assert len(sms_standin.messages_to("13700137000")) == 5


def test_outage_answers_500_which_is_transient(sms_standin, client):
    sms_standin.set_outage(True)
    with pytest.raises(ServerError) as outage:
        _send(client)
    assert outage.value.status == 500
    assert not outage.value.permanent
    assert outage.value.details["Code"] == "InternalError"
    assert sms_standin.messages == []
    sms_standin.set_outage(False)
    assert _send(client)
    assert len(sms_standin.messages) == 1


def test_a_reused_nonce_is_refused(sms_standin, client):
    query = client.signed_query(_sms_params(), nonce="nonce-once")
    status, body = _raw_get(sms_standin, query)
    assert (status, body["Code"]) == (200, "OK")
    status, body = _raw_get(sms_standin, query)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    assert len(sms_standin.messages) == 1


def test_a_stale_or_future_timestamp_is_refused(sms_standin, client):
    for at in (time.time() - 16 * 60, time.time() + 16 * 60):
        status, body = _raw_get(sms_standin, client.signed_query(_sms_params(), at=at))
        assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
    status, body = _raw_get(sms_standin, client.signed_query(_sms_params(), at=time.time() - 10 * 60))
    assert (status, body["Code"]) == (200, "OK")


def test_a_parameter_changed_after_signing_is_refused_with_the_servers_string_to_sign(sms_standin, client):
    query = client.signed_query(_sms_params())
    tampered = query.replace("PhoneNumbers=13800138000", "PhoneNumbers=13900139000")
    status, body = _raw_get(sms_standin, tampered)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert "server string to sign is:GET&%2F&AccessKeyId" in body["Message"]
    assert "PhoneNumbers%3D13900139000" in body["Message"]
    assert body["HostId"] and body["RequestId"]
    assert sms_standin.messages == []


def test_a_missing_common_parameter_or_wrong_version_is_refused(sms_standin):
    params = {
        "AccessKeyId": SMS_ACCESS_KEY_ID,
        "Action": "SendSms",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "Version": "2017-05-25",
        **{k: v for k, v in _sms_params().items() if k != "Action"},
    }
    signed = "&".join(f"{k}={percent_encode(v)}" for k, v in params.items())
    signature = percent_encode(sign_v1(params, SMS_ACCESS_KEY_SECRET))
    status, body = _raw_get(sms_standin, f"{signed}&Signature={signature}")
    assert (status, body["Code"]) == (400, "MissingSignatureNonce")
    params.update(SignatureNonce="n-2", Version="2016-09-27")
    signed = "&".join(f"{k}={percent_encode(v)}" for k, v in params.items())
    signature = percent_encode(sign_v1(params, SMS_ACCESS_KEY_SECRET))
    status, body = _raw_get(sms_standin, f"{signed}&Signature={signature}")
    assert (status, body["Code"]) == (400, "InvalidVersion")


def test_post_with_a_form_body_is_signed_with_post(sms_standin):
    params = {
        "AccessKeyId": SMS_ACCESS_KEY_ID,
        "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "n-post",
        "SignatureVersion": "1.0",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "Version": "2017-05-25",
        **_sms_params(),
    }
    response = requests.post(
        f"{sms_standin.url}/",
        data={**params, "Signature": sign_v1(params, SMS_ACCESS_KEY_SECRET, "POST")},
        timeout=10,
    )
    assert (response.status_code, response.json()["Code"]) == (200, "OK")
    params["SignatureNonce"] = "n-post-2"
    response = requests.post(
        f"{sms_standin.url}/",
        data={**params, "Signature": sign_v1(params, SMS_ACCESS_KEY_SECRET, "GET")},
        timeout=10,
    )
    assert (response.status_code, response.json()["Code"]) == (400, "SignatureDoesNotMatch")


def test_numbers_with_prefixes_and_several_numbers_in_one_call(sms_standin, client):
    biz_id = client.send(
        phone_numbers=["+8613800138000", "008613900139000", "8613700137000", "13600136000"],
        sign_name=SMS_SIGN_NAME,
        template_code=SMS_TEMPLATE_CODE,
        template_param=SMS_TEMPLATE_PARAM,
    )
    assert sorted(m.phone_number for m in sms_standin.messages) == [
        "13600136000",
        "13700137000",
        "13800138000",
        "13900139000",
    ]
    assert {m.biz_id for m in sms_standin.messages} == {biz_id}


def test_one_bad_number_refuses_the_whole_call(sms_standin, client):
    with pytest.raises(Invalid):
        client.send(
            phone_numbers=["13800138000", "1380013800"],
            sign_name=SMS_SIGN_NAME,
            template_code=SMS_TEMPLATE_CODE,
            template_param=SMS_TEMPLATE_PARAM,
        )
    assert sms_standin.messages == []


def test_template_param_must_be_a_json_object_of_strings(sms_standin, client):
    status, body = _raw_get(sms_standin, client.signed_query(_sms_params(TemplateParam='{"service": 1}')))
    assert (status, body["Code"]) == (200, "isv.INVALID_JSON_PARAM")
    status, body = _raw_get(sms_standin, client.signed_query(_sms_params(TemplateParam="not json")))
    assert (status, body["Code"]) == (200, "isv.INVALID_JSON_PARAM")
    # The client sends every value as a string, so numbers in template_param are fine.
    assert _send(client, template_param={**SMS_TEMPLATE_PARAM, "service": 42})
    assert sms_standin.messages[0].text.startswith("【运维平台】42 prod")


def test_an_empty_balance_is_a_permanent_refusal(sms_standin, client):
    sms_standin.balance = 1
    _send(client)
    with pytest.raises(Invalid) as refused:
        _send(client, "13900139000")
    assert refused.value.details["Code"] == "isv.AMOUNT_NOT_ENOUGH"
    assert refused.value.permanent
    assert len(sms_standin.messages) == 1


def test_the_secret_is_never_in_an_error(sms_standin):
    wrong = AliyunSms(sms_standin.url, SMS_ACCESS_KEY_ID, "a-wrong-secret-value")
    with pytest.raises(Unauthorized) as refused:
        _send(wrong)
    error = refused.value
    assert "a-wrong-secret-value" not in f"{error} {error.cause} {error.details}"
