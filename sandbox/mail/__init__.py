"""A real local SMTP server (aiosmtpd) that records what it receives; see docs/sandbox.md."""

from sandbox.mail.server import ReceivedMail, SmtpServer

__all__ = ["ReceivedMail", "SmtpServer"]
