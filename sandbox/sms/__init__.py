"""Alibaba Cloud SMS (SendSms) stand-in that verifies the V1 signature; see docs/sandbox.md."""

from sandbox.sms.server import SmsMessage, SmsStandin

__all__ = ["SmsMessage", "SmsStandin"]
