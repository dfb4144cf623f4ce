"""Email through Django's SMTP backend (``django.core.mail``, the EMAIL_* settings).

Failures are the typed errors of ``integrations.errors``, with the SMTP reply code in ``details``:

- a 4xx reply (mailbox busy, server short of storage, 421 closing) and no answer at all (refused,
  disconnected, timed out) are transient: the mail server may take it later;
- a 5xx reply is permanent: a rejected sender or recipient (``Invalid``), rejected credentials (535,
  ``Unauthorized``), a refused message;
- an empty EMAIL_HOST means email is off: ``Invalid``, permanent.
"""

from __future__ import annotations

import smtplib
import socket

from integrations.errors import IntegrationError, Invalid, ServerError, Timeout, Unauthorized, Unreachable

SYSTEM = "the mail server"


def _from_reply(code: int, reply: bytes | str, what: str) -> IntegrationError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    details = {"smtp_code": code}
    cause = f"{code} {text}"[:300]
    if 400 <= code < 500:
        return ServerError(f"{SYSTEM} asked to try later ({code})", cause=cause, details=details)
    if code in (530, 534, 535):
        return Unauthorized(
            f"{SYSTEM} refused the credentials ({code}): check EMAIL_HOST_USER and EMAIL_HOST_PASSWORD",
            cause=cause,
            details=details,
        )
    return Invalid(f"{SYSTEM} refused {what} ({code})", cause=cause, details=details)


def smtp_error(exc: Exception) -> IntegrationError:
    """The typed error for what ``EmailMessage.send`` raised."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refusals = exc.recipients or {}
        codes = [code for code, _ in refusals.values()]
        # Every recipient refused; if any refusal is temporary, the whole message is worth another try.
        code = next((c for c in codes if 400 <= c < 500), codes[0] if codes else 550)
        reply = next((r for c, r in refusals.values() if c == code), b"")
        return _from_reply(code, reply, "the recipients")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _from_reply(exc.smtp_code, exc.smtp_error, "the sender address (DEFAULT_FROM_EMAIL)")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _from_reply(exc.smtp_code, exc.smtp_error, "the message")
    if isinstance(exc, TimeoutError | socket.timeout):
        return Timeout(f"{SYSTEM} did not answer in time", cause=str(exc))
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | OSError):
        return Unreachable(f"cannot talk to {SYSTEM}", cause=str(exc) or exc.__class__.__name__)
    if isinstance(exc, smtplib.SMTPException):
        return IntegrationError(f"{SYSTEM} failed", cause=str(exc))
    raise exc


def send_email(*, subject: str, body: str, recipients: list[str], from_email: str | None = None) -> None:
    """Send one plain-text message to ``recipients`` through the configured SMTP server."""
    from django.conf import settings
    from django.core.mail import EmailMessage, get_connection

    if not settings.EMAIL_HOST:
        raise Invalid("Email is not configured (EMAIL_HOST is empty)")
    if not recipients:
        raise Invalid("no recipient to send the email to")
    message = EmailMessage(
        subject=" ".join(subject.split())[:250],  # a header: no line breaks
        body=body,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        # Always SMTP, whatever EMAIL_BACKEND says: the test runner swaps that for an in-memory outbox,
        # and what must be proven is what an SMTP server is handed.
        connection=get_connection("django.core.mail.backends.smtp.EmailBackend", fail_silently=False),
    )
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise smtp_error(exc) from None
