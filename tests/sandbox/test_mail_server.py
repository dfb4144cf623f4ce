"""The sandbox's SMTP server (aiosmtpd) reached through Django's real SMTP backend: a Chinese message
arrives decoded as it was written, and the server's refusals surface as smtplib exceptions whose reply
code says whether to retry (4xx) or not (5xx)."""

from __future__ import annotations

import smtplib
from email.utils import parseaddr

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection

from sandbox.mail import SmtpServer

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
SUBJECT = "【告警】go-hello 生产环境：5xx 错误率 12.5% > 5%"
BODY = (
    "服务 go-hello（生产环境）的 5xx 错误率在过去 5 分钟为 12.5%，超过阈值 5%。\n"
    "严重级别：critical\n"
    "详情：https://ops.example.com/projects/go-hello/alerts/42\n"
)
HTML = (
    '<p>服务 <b>go-hello</b> 的 5xx 错误率为 12.5%。<a href="https://ops.example.com/a/42">查看详情</a></p>'
)


def _connection(server: SmtpServer, **kwargs):
    return get_connection(SMTP_BACKEND, host=server.host, port=server.port, timeout=10, **kwargs)


def _message(connection) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=SUBJECT,
        body=BODY,
        from_email="运维平台 <alerts@opsportal.local>",
        to=["张三 <zhangsan@example.com>", "ops@example.com"],
        connection=connection,
    )
    message.attach_alternative(HTML, "text/html")
    return message


def smtp_reply_code(exc: smtplib.SMTPException) -> int | None:
    """The SMTP reply code behind a send failure, as delivery code can read it: the data or sender
    refusal's ``smtp_code``, or the first refused recipient's code."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        return next(iter(exc.recipients.values()))[0]
    return None


def test_a_chinese_message_arrives_decoded_as_written(smtp_server):
    assert _message(_connection(smtp_server)).send() == 1
    (mail,) = smtp_server.messages
    assert mail.mail_from == "alerts@opsportal.local"
    assert mail.rcpt_tos == ("zhangsan@example.com", "ops@example.com")
    assert mail.subject == SUBJECT
    assert mail.text == BODY
    assert mail.html.rstrip("\n") == HTML
    assert mail.message["From"].addresses[0].display_name == "运维平台"
    assert mail.message["To"].addresses[0].display_name == "张三"
    assert mail.header("Message-ID")
    # On the wire the headers were encoded (RFC 2047), not raw UTF-8.
    assert "=?utf-8?" in mail.message.as_bytes().decode("ascii", "replace").lower()


def test_451_is_an_smtp_exception_with_a_transient_code(smtp_server):
    smtp_server.set_fault(451)
    with pytest.raises(smtplib.SMTPException) as refused:
        _message(_connection(smtp_server)).send()
    assert isinstance(refused.value, smtplib.SMTPDataError)
    assert smtp_reply_code(refused.value) == 451
    assert smtp_server.messages == []
    smtp_server.set_fault(None)
    assert _message(_connection(smtp_server)).send() == 1
    assert len(smtp_server.messages) == 1


def test_550_is_an_smtp_exception_with_a_permanent_code(smtp_server):
    smtp_server.set_fault(550)
    with pytest.raises(smtplib.SMTPException) as refused:
        _message(_connection(smtp_server)).send()
    assert smtp_reply_code(refused.value) == 550
    assert smtp_server.messages == []


@pytest.mark.parametrize("code", [451, 550])
def test_refused_recipients_carry_their_code(smtp_server, code):
    smtp_server.set_fault(code, stage="rcpt")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _message(_connection(smtp_server)).send()
    # The keys are the addresses as Django handed them to smtplib (display names RFC 2047-encoded).
    assert {parseaddr(r)[1] for r in refused.value.recipients} == {"zhangsan@example.com", "ops@example.com"}
    assert smtp_reply_code(refused.value) == code
    assert smtp_server.messages == []


def test_auth_when_configured():
    with SmtpServer(credentials={"portal": "s3cret-pass"}) as server:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            _message(_connection(server, username="portal", password="wrong")).send()
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # no AUTH at all
            _message(_connection(server)).send()
        assert refused.value.smtp_code == 530
        assert server.messages == []
        assert _message(_connection(server, username="portal", password="s3cret-pass")).send() == 1
        assert server.messages[0].subject == SUBJECT


def test_free_ports_do_not_collide():
    with SmtpServer() as first, SmtpServer() as second:
        assert first.port and second.port and first.port != second.port
