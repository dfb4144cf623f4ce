"""WeCom (企业微信) group robot (群机器人) webhook client."""

from integrations.wecom.client import WeComRobot

__all__ = ["WeComRobot"]
