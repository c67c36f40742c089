"""Notifications' settings (environment variables), read once when the service starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.notifications.domain import DEFAULT_MAIL_RETRY_DELAYS_S


@dataclass(frozen=True)
class NotificationsConfig:
    # smtp://host:port (?starttls=1), or smtps://, with optional user:password@; unset: the
    # emails go into a local Maildir (MAILDIR, else var/mail).
    smtp_url: str | None = None
    maildir: str | None = None
    mail_from: str = "Clientela Store <store@localhost>"
    storefront_url: str = "http://127.0.0.1:8000"  # where the emails' links lead
    # Delays between attempts after a temporary SMTP failure; then the email has failed.
    mail_retry_delays_s: tuple[float, ...] = field(default=DEFAULT_MAIL_RETRY_DELAYS_S)
    # A crashed sender's claim expires after this, and the sweep sends the email. Longer than
    # any SMTP conversation (the mailer's timeouts), or a slow send could go out twice.
    send_lease_seconds: float = 120.0
    # DKIM signing: selector, domain and key (PEM, or a file): all three, or none.
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key: str | None = None
    dkim_private_key_file: str | None = None
