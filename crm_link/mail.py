"""Notices by email over SMTP (the standard library's smtplib and email): a multipart message with a plain
text and an HTML part, sent through the installation's relay (CARGOTRACE_SMTP_*) with STARTTLS before any
login. The Message-ID is the delivery's webhook id, the same on every retry, so a mail system that
deduplicates by it shows a retried message once."""

from __future__ import annotations

import smtplib
import ssl
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from html import escape

from common.settings import Settings
from crm_link.notices import Notice


def address(text: str) -> str:
    """A recipient's address as given (`name@example.com`), or ValueError naming what is wrong: one bare
    address, no display name, no line breaks (header injection)."""
    if any(c in text for c in "\r\n\0"):
        raise ValueError("an address has no line breaks")
    try:
        parsed = Address(addr_spec=text.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(str(exc) or "not an address") from None
    if not parsed.username or "." not in parsed.domain or parsed.addr_spec != text.strip():
        raise ValueError("expected name@domain")
    return parsed.addr_spec


def message(notice: Notice, to: str, sender: str, message_id: str, language: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = notice.title, sender, to
    mail["Message-ID"] = f"<{message_id}@cargotrace>"
    plain = [notice.title, "", *notice.lines]
    html = [f"<h3>{escape(notice.title)}</h3>", *(f"<p>{escape(line)}</p>" for line in notice.lines)]
    if notice.link:
        plain += ["", f"{notice.link_text}: {notice.link}"]
        html.append(f'<p><a href="{escape(notice.link)}">{escape(notice.link_text)}</a></p>')
    mail.set_content("\n".join(plain) + "\n")
    mail.add_alternative(f'<html lang="{language}"><body>{"".join(html)}</body></html>', subtype="html")
    mail["Content-Language"] = language  # after the parts: setting content clears the content headers
    return mail


def send(settings: Settings, mail: EmailMessage) -> None:
    """Hand the message to the relay; any SMTP refusal or network error raises (smtplib.SMTPException,
    OSError) and the outbox retries."""
    if not settings.smtp_host:
        raise smtplib.SMTPException("no SMTP relay is configured (CARGOTRACE_SMTP_HOST)")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.webhook_timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=settings.smtp_ca_file))
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value() if settings.smtp_password else "")
        smtp.send_message(mail)
