"""Channels pointed at the real stand-ins (chat robots, SMTP, SMS), for the delivery and channel tests.
Imported by the test modules that use them (``from tests.alerting.channel_fixtures import *``)."""

from __future__ import annotations

import pytest

from alerting.choices import ChannelKind
from alerting.services.channels import channel_create
from tests.fixtures.alerting import SMS_ACCESS_KEY_ID, SMS_ACCESS_KEY_SECRET, SMS_SIGN_NAME, SMS_TEMPLATE_CODE

DINGTALK_TOKEN = "dt-token-3f9a21"
DINGTALK_SECRET = "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f9"
DINGTALK_KEYWORD = "告警"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
RECIPIENTS = ["oncall@example.com", "ops@example.com"]
MOBILE = "13800138000"


@pytest.fixture
def robots(settings, chatrobots_standin):
    """The chat-robot stand-in with one signed DingTalk robot (with a keyword) and one WeCom robot."""
    settings.DINGTALK_WEBHOOK_BASE = chatrobots_standin.url
    settings.WECOM_WEBHOOK_BASE = chatrobots_standin.url
    chatrobots_standin.add_dingtalk_robot(DINGTALK_TOKEN, secret=DINGTALK_SECRET, keywords=[DINGTALK_KEYWORD])
    chatrobots_standin.add_wecom_robot(WECOM_KEY)
    return chatrobots_standin


@pytest.fixture
def mail(settings, smtp_server):
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return smtp_server


@pytest.fixture
def sms(settings, sms_standin):
    settings.SMS_ENDPOINT = sms_standin.url
    settings.SMS_ACCESS_KEY_ID = SMS_ACCESS_KEY_ID
    settings.SMS_ACCESS_KEY_SECRET = SMS_ACCESS_KEY_SECRET
    return sms_standin


@pytest.fixture
def dingtalk_channel(people):
    return channel_create(
        actor=people.owner,
        project=people.project,
        name="orders-dingtalk",
        kind=ChannelKind.DINGTALK,
        access_token=DINGTALK_TOKEN,
        signing_secret=DINGTALK_SECRET,
        keyword=DINGTALK_KEYWORD,
    )


@pytest.fixture
def wecom_channel(people):
    return channel_create(
        actor=people.owner, project=people.project, name="orders-wecom", kind=ChannelKind.WECOM, key=WECOM_KEY
    )


@pytest.fixture
def email_channel(people):
    return channel_create(
        actor=people.ops, project=None, name="ops-mail", kind=ChannelKind.EMAIL, recipients=RECIPIENTS
    )


@pytest.fixture
def sms_channel(people):
    return channel_create(
        actor=people.owner,
        project=people.project,
        name="orders-sms",
        kind=ChannelKind.SMS,
        numbers=[MOBILE],
        sign_name=SMS_SIGN_NAME,
        template_code=SMS_TEMPLATE_CODE,
    )
