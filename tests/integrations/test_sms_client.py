"""The Alibaba Cloud RPC signature V1 as pure functions, and how the SMS client maps the service's answers
to the typed errors. The stand-in conformance is in tests/sandbox/sms/."""

from __future__ import annotations

import pytest

from integrations.errors import IntegrationError, Invalid, ServerError, Unauthorized
from integrations.sms.client import (
    AliyunSms,
    canonical_query,
    error_from_answer,
    percent_encode,
    sign_v1,
    string_to_sign,
)

# Alibaba Cloud's own worked example ("签名机制", the ECS DescribeRegions request with AccessKey
# testid/testsecret). It spells the timestamp parameter "TimeStamp"; what matters is that it is signed
# as given.
DOCUMENTED_PARAMS = {
    "TimeStamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}
# The documented string-to-sign; one copy of the page shows the separators after "GET&%2F&" as "&", but
# encoding the whole canonical query (and the documented signature, which only this form reproduces)
# makes them "%26".
DOCUMENTED_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
    "%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)
DOCUMENTED_SIGNATURE = "CT9X0VtwR86fNWSnsc6v8YGOjuE="

# Our own SendSms vector, written out by hand from the documented rules (sort; UTF-8 percent-encoding
# with %20 / %2A / ~; encode the query once more; key = secret + "&") and cross-checked with
# `printf %s "$STRING_TO_SIGN" | openssl dgst -sha1 -hmac 'testSecret&' -binary | base64`.
SMS_PARAMS = {
    "Action": "SendSms",
    "Version": "2017-05-25",
    "AccessKeyId": "testId",
    "Format": "JSON",
    "RegionId": "cn-hangzhou",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "Timestamp": "2026-11-30T08:00:00Z",
    "PhoneNumbers": "13800138000",
    "SignName": "运维平台",  # UTF-8 e8bf90 e7bbb4 e5b9b3 e58fb0
    "TemplateCode": "SMS_123456789",
    "TemplateParam": '{"service":"go-hello *~ 5xx>5%","level":"critical"}',
}
SMS_CANONICAL_QUERY = (
    "AccessKeyId=testId&Action=SendSms&Format=JSON&PhoneNumbers=13800138000&RegionId=cn-hangzhou"
    "&SignName=%E8%BF%90%E7%BB%B4%E5%B9%B3%E5%8F%B0&SignatureMethod=HMAC-SHA1"
    "&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0&TemplateCode=SMS_123456789"
    "&TemplateParam=%7B%22service%22%3A%22go-hello%20%2A~%205xx%3E5%25%22%2C%22level%22%3A%22critical%22%7D"
    "&Timestamp=2026-11-30T08%3A00%3A00Z&Version=2017-05-25"
)
SMS_SIGNATURE = "hvEwS1+kuD35p2Q+ERGc4+olCKg="


def test_documented_example_string_to_sign_and_signature():
    assert string_to_sign(DOCUMENTED_PARAMS) == DOCUMENTED_STRING_TO_SIGN
    assert sign_v1(DOCUMENTED_PARAMS, "testsecret") == DOCUMENTED_SIGNATURE


def test_sendsms_vector():
    assert canonical_query(SMS_PARAMS) == SMS_CANONICAL_QUERY
    assert string_to_sign(SMS_PARAMS) == "GET&%2F&" + percent_encode(SMS_CANONICAL_QUERY)
    assert sign_v1(SMS_PARAMS, "testSecret") == SMS_SIGNATURE
    # The Signature parameter itself is never signed, and another secret gives another signature.
    assert sign_v1({**SMS_PARAMS, "Signature": SMS_SIGNATURE}, "testSecret") == SMS_SIGNATURE
    assert sign_v1(SMS_PARAMS, "testSecreT") != SMS_SIGNATURE


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a b", "a%20b"),  # not "+"
        ("*", "%2A"),
        ("~", "~"),  # not "%7E"
        ("+", "%2B"),
        ("/", "%2F"),
        ("-_.", "-_."),
        ("AZaz09", "AZaz09"),
        ("=&", "%3D%26"),
        ("告警", "%E5%91%8A%E8%AD%A6"),
    ],
)
def test_percent_encode_rules(raw, encoded):
    assert percent_encode(raw) == encoded


def test_canonical_query_sorts_by_name_and_skips_signature():
    assert canonical_query({"b": "2", "Signature": "x", "a": "1", "B": "3"}) == "B=3&a=1&b=2"


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "permanent", "retry_after"),
    [
        (200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", ServerError, False, 60.0),
        (200, "isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5", ServerError, False, 3600.0),
        (200, "isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10", ServerError, False, 86400.0),
        (400, "Throttling.User", "Request was denied due to user flow control.", ServerError, False, None),
        (400, "SignatureNonceUsed", "Specified signature nonce was used already.", ServerError, False, None),
        (500, "InternalError", "The request processing has failed.", ServerError, False, None),
        (
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure.",
            ServerError,
            False,
            None,
        ),
        (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", Invalid, True, None),
        (200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值", Invalid, True, None),
        (200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名", Invalid, True, None),
        (200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板", Invalid, True, None),
        (200, "isv.AMOUNT_NOT_ENOUGH", "账户余额不足", Invalid, True, None),
        (
            400,
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
            Unauthorized,
            True,
            None,
        ),
        (404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", Unauthorized, True, None),
        (200, "isv.SOMETHING_NEW", "新的错误", IntegrationError, True, None),
    ],
)
def test_answer_mapping(status, code, message, kind, permanent, retry_after):
    error = error_from_answer(status, {"Code": code, "Message": message, "RequestId": "R-1"})
    assert type(error) is kind
    assert error.permanent is permanent
    assert error.retry_after == retry_after
    assert error.status == status
    assert error.details == {"Code": code, "Message": message, "RequestId": "R-1"}
    assert code in str(error)


def test_http_5xx_without_a_code_is_transient():
    error = error_from_answer(502, {})
    assert isinstance(error, ServerError) and not error.permanent and error.details["Code"] == ""


def test_client_refuses_empty_input_and_hides_its_secret():
    client = AliyunSms("http://127.0.0.1:9", "key-id", "the-secret")
    assert "the-secret" not in repr(client)
    with pytest.raises(Invalid):
        client.send(phone_numbers=[" "], sign_name="s", template_code="t", template_param={})
    with pytest.raises(Invalid):
        AliyunSms("http://127.0.0.1:9", "key-id", "")


def test_signed_query_carries_the_common_parameters_and_its_signature():
    client = AliyunSms("http://127.0.0.1:9", "testId", "testSecret")
    query = client.signed_query({"Action": "SendSms"}, nonce="n-1", at=1_700_000_000)
    expected = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "n-1",
        "SignatureVersion": "1.0",
        "Timestamp": "2023-11-14T22:13:20Z",
        "Version": "2017-05-25",
    }
    unsigned, signature = query.split("&Signature=")
    assert unsigned == canonical_query(expected)
    assert signature == percent_encode(sign_v1(expected, "testSecret"))
