"""Notifications' nameko dependencies: its database, the templates, and the mailer."""

from __future__ import annotations

import contextlib
import mailbox
import os
import queue
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from nameko.extensions import DependencyProvider

from messaging.database import Database, var_dir
from services.notifications.domain import PermanentMailError, TransientMailError, one_line
from services.notifications.models import Base

TEMPLATES_DIR = Path(__file__).parent / "templates"


def notifications_database() -> Database:
    return Database(
        Base.metadata, url_env="NOTIFICATIONS_DATABASE_URL", sqlite_name="notifications.db"
    )


def money(amount_minor: int, currency: str, locale: str) -> str:
    digits = get_currency_precision(currency)
    return format_currency(amount_minor / 10**digits, currency, locale=locale)


@cache
def template_environment() -> Environment:
    """One environment per process: it compiles each template once and keeps it."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # HTML bodies are escaped; subjects and text bodies are plain text.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["money"] = money
    return env


def render_email(kind: str, locale: str, context: dict[str, Any],
                 env: Environment | None = None) -> tuple[str, str, str]:
    """(subject, text, html) for one email kind in one locale."""
    env = env or template_environment()
    locale = locale if (TEMPLATES_DIR / locale).is_dir() else "en"
    context = {**context, "locale": locale}
    subject = env.get_template(f"{locale}/{kind}.subject.j2").render(context)
    text = env.get_template(f"{locale}/{kind}.txt.j2").render(context)
    html = env.get_template(f"{locale}/{kind}.html.j2").render(context)
    return one_line(subject), text, html


def build_message(*, message_id: str, sender: str, recipient: str, subject: str, text: str,
                  html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = message_id
    msg["From"] = one_line(sender)
    msg["To"] = formataddr(("", one_line(recipient)))
    msg["Subject"] = subject
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


class Mailer:
    """Sends over SMTP (``SMTP_URL``: smtp:// with ?starttls=1, or smtps://, with optional
    user:password@) or, without SMTP_URL, drops messages into a local Maildir (var/mail).

    SMTP connections are kept open and reused (a few, one per concurrent sender): a new
    connection per message costs a TCP and TLS handshake and EHLO on both sides."""

    def __init__(self, smtp_url: str | None, maildir: Path, timeout: float = 15.0,
                 pool_size: int = 4) -> None:
        self.smtp_url = smtp_url
        self.maildir = maildir
        self.timeout = timeout
        self._idle: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue(maxsize=pool_size)

    def send(self, msg: EmailMessage) -> None:
        if not self.smtp_url:
            mailbox.Maildir(self.maildir, create=True).add(msg)
            return
        try:
            client = self._idle.get_nowait()
            reused = True
        except queue.Empty:
            client, reused = None, False
        try:
            try:
                client = client or self._connect()
                client.send_message(msg)
            except smtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed the idle connection: one fresh try.
                self._close(client)
                client = self._connect()
                client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            self._release(client)  # the conversation itself is fine
            codes = [code for code, _ in exc.recipients.values()]
            error = f"recipient refused: {codes}"
            if all(400 <= code < 500 for code in codes):
                raise TransientMailError(error) from None
            raise PermanentMailError(error) from None
        except smtplib.SMTPResponseException as exc:
            self._close(client)  # a half-finished transaction: start clean next time
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300]
            if 400 <= exc.smtp_code < 500:
                raise TransientMailError(error) from None
            raise PermanentMailError(error) from None
        except (OSError, smtplib.SMTPException) as exc:
            # Connection refused, reset, timeout, server gone: try again later.
            self._close(client)
            raise TransientMailError(f"{type(exc).__name__}: {exc}"[:300]) from None
        self._release(client)

    def _connect(self) -> smtplib.SMTP:
        url = urlparse(self.smtp_url or "")
        options = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                url.hostname or "localhost", url.port or 465, timeout=self.timeout,
                context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(url.hostname or "localhost", url.port or 25,
                                  timeout=self.timeout)
        if url.scheme == "smtp" and options.get("starttls") in ("1", "true", "yes"):
            client.starttls(context=ssl.create_default_context())
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
        return client

    def _release(self, client: smtplib.SMTP | None) -> None:
        if client is None:
            return
        try:
            self._idle.put_nowait(client)
        except queue.Full:
            self._close(client)

    @staticmethod
    def _close(client: smtplib.SMTP | None) -> None:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


class MailerProvider(DependencyProvider):
    def setup(self) -> None:
        self.mailer = Mailer(os.environ.get("SMTP_URL") or None,
                             Path(os.environ.get("MAILDIR") or var_dir() / "mail"))
        self.sender = os.environ.get("MAIL_FROM", "Clientela Store <store@localhost>")
        self.storefront_url = os.environ.get("STOREFRONT_URL", "http://127.0.0.1:8000")

    def get_dependency(self, worker_ctx: Any) -> MailerProvider:
        return self
