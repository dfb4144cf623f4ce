"""A real SMTP server on a loopback port (aiosmtpd), recording what it receives instead of relaying it.

The portal's email goes out through Django's SMTP backend; in the sandbox and the tests it arrives here,
over the same wire protocol, so what is asserted is what a mail server would have been handed: the
envelope, the headers and the decoded text and HTML parts.

- Started with port 0, it listens on a free port (``.port`` after ``start()``).
- AUTH is off by default; ``credentials={"user": "password"}`` turns it on and makes it required
  (LOGIN and PLAIN, without TLS: loopback only).
- Faults: ``set_fault(451)`` (or 550, 421, …) answers every following message with that code until
  ``set_fault(None)``; ``stage="rcpt"`` refuses the recipients instead of the data, as a server that
  rejects an address does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

_FAULT_TEXT = {
    421: "421 4.3.2 Service not available, closing transmission channel",
    450: "450 4.2.1 Mailbox temporarily unavailable",
    451: "451 4.3.0 Requested action aborted: local error in processing",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Requested action not taken: mailbox unavailable",
    552: "552 5.3.4 Message size exceeds fixed maximum message size",
    554: "554 5.7.1 Transaction failed",
}


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage  # parsed with email.policy.default: headers come back decoded

    @property
    def subject(self) -> str:
        return self.header("Subject")

    def header(self, name: str) -> str:
        """The decoded value as a mail reader shows it. Django folds a long encoded subject right after
        the colon ("Subject:" CRLF SP "=?utf-8?b?…"); email.policy.default keeps that folding space in
        front of the value, which is whitespace after the colon, not part of the subject."""
        return str(self.message[name] or "").strip()

    def _part(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        # SMTP carries lines as CRLF; the text the sender wrote had plain newlines.
        return part.get_content().replace("\r\n", "\n") if part is not None else ""

    @property
    def text(self) -> str:
        return self._part("plain")

    @property
    def html(self) -> str:
        return self._part("html")


class _Recorder:
    """The aiosmtpd handler: records each message, or answers the configured fault."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:  # noqa: N802
        fault = self.server.fault_for("rcpt")
        if fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        fault = self.server.fault_for("data")
        if fault:
            return fault
        content = envelope.original_content or envelope.content
        parsed = message_from_bytes(content, policy=policy.default)
        self.server.record(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


class _Authenticator:
    def __init__(self, credentials: dict[str, str]) -> None:
        self.credentials = credentials

    def __call__(self, server, session, envelope, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.credentials.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class _FreePortController(Controller):
    """aiosmtpd's Controller, able to listen on port 0: it checks the server answers by connecting to
    ``self.port``, so the port the kernel picked is read from the listening socket first."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, credentials: dict[str, str] | None = None
    ) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._fault: tuple[str, str] | None = None  # (stage, reply)
        auth: dict[str, Any] = {}
        if credentials:
            auth = {
                "authenticator": _Authenticator(dict(credentials)),
                "auth_required": True,
                "auth_require_tls": False,
            }
        self._controller = _FreePortController(
            _Recorder(self), hostname=host, port=port, server_hostname="sandbox-smtp.local", **auth
        )

    @property
    def port(self) -> int:
        return self._controller.port

    def start(self) -> tuple[str, int]:
        self._controller.start()
        return self.host, self.port

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what arrived -----------------------------------------------------------------------------------

    def record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    # -- faults -----------------------------------------------------------------------------------------

    def set_fault(self, code: int | None, *, stage: Literal["data", "rcpt"] = "data") -> None:
        """Answer every following message with ``code`` (e.g. 451 transient, 550 permanent) at ``stage``
        until ``set_fault(None)``."""
        if code is None:
            self._fault = None
            return
        if stage not in ("data", "rcpt"):
            raise ValueError("stage is 'data' or 'rcpt'")
        self._fault = (stage, _FAULT_TEXT.get(code, f"{code} Refused by the sandbox"))

    def fault_for(self, stage: str) -> str | None:
        fault = self._fault
        return fault[1] if fault and fault[0] == stage else None
