"""Identity's own database: store settings, customer accounts, staff, tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from messaging.contracts import PAYMENT_METHODS
from messaging.database import UtcDateTime
from messaging.envelope import utcnow
from messaging.outbox import add_messaging_tables


class Base(DeclarativeBase):
    pass


OUTBOX, PROCESSED_EVENTS = add_messaging_tables(Base.metadata)


class StoreSettings(Base):
    """One row (id 1): how customers log in at checkout, and the store's defaults."""

    __tablename__ = "store_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_accounts: Mapped[str] = mapped_column(String(16), default="disabled")
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    password_min_length: Mapped[int] = mapped_column(Integer, default=8)
    # How many of lower case, upper case, digits and symbols a password needs (0: no rule).
    password_min_classes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locale: Mapped[str] = mapped_column(String(10), default="es")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    store_name: Mapped[str] = mapped_column(String(100), default="Clientela Store")
    # IANA time zone: what "a day" means in the admin's date filters and exports.
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Madrid",
                                          server_default="Europe/Madrid")
    # The sender's address on labels and printouts: up to 5 lines.
    store_address: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # Where customers' replies to the store's emails go (Reply-To); none: to MAIL_FROM.
    reply_to: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # The payment methods checkout offers, and the bank details a transfer order shows.
    payment_methods: Mapped[list | None] = mapped_column(JSON, nullable=True,
                                                         default=lambda: list(PAYMENT_METHODS))
    bank_transfer_instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who sees prices: everyone, or logged-in customers only (members-only stores).
    prices_visible: Mapped[str] = mapped_column(String(16), default="everyone",
                                                server_default="everyone")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow,
                                                 onupdate=utcnow)


class StoreSettingsChange(Base):
    """History of settings changes: who changed what, from what, to what."""

    __tablename__ = "store_settings_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    changes: Mapped[dict] = mapped_column(JSON)  # {field: [from, to]}


class Account(Base):
    """A customer's credentials. Its id is the customer id everywhere else."""

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # active, pending_approval (required mode with approval), invited (no password yet), disabled
    status: Mapped[str] = mapped_column(String(20), index=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str] = mapped_column(String(10))
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class StaffUser(Base):
    """The merchant's people: an owner (settings, staff) and staff (customers, orders)."""

    __tablename__ = "staff_users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RefreshToken(Base):
    """Opaque refresh tokens, stored hashed. A family is one login (a "session"): each use
    rotates the token within the family; presenting a used one revokes the whole family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    audience: Mapped[str] = mapped_column(String(16))  # storefront | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)


class OneTimeToken(Base):
    """Reset, invitation, verification and email-change tokens: hashed, single use, expiring;
    a newer token of the same purpose supersedes older ones."""

    __tablename__ = "one_time_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    purpose: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class LoginThrottle(Base):
    """Failed logins per account email and per client address, with the lock they earned."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # "email:…" or "ip:…"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UtcDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
