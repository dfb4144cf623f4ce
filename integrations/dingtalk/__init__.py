"""DingTalk custom robot (群自定义机器人) webhook client."""

from integrations.dingtalk.client import DingTalkRobot, dingtalk_sign

__all__ = ["DingTalkRobot", "dingtalk_sign"]
