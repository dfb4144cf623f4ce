"""Alibaba Cloud SMS (Dysmsapi SendSms) client, signed with the RPC signature V1."""
