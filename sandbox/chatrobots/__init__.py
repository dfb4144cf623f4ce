"""DingTalk and WeCom group-robot stand-in (signature, keyword, key, 20 a minute); see docs/sandbox.md."""

from sandbox.chatrobots.server import ChatRobotsStandin, RobotMessage

__all__ = ["ChatRobotsStandin", "RobotMessage"]
