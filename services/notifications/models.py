"""Notifications' own database: the delivery log (one row per event, email kind and recipient)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from messaging.database import UtcDateTime
from messaging.envelope import utcnow
from messaging.outbox import add_messaging_tables


class Base(DeclarativeBase):
    pass


OUTBOX, PROCESSED_EVENTS = add_messaging_tables(Base.metadata)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "kind", "recipient"),)

    # Derived from (event, kind, recipient): the same event can never make a second row,
    # and the Message-ID built from it lets a mail server spot a resend after a crash.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    locale: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending/sending/sent/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    context: Mapped[dict] = mapped_column(JSON)  # what the template needs
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow,
                                                 index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class NotificationSetting(Base):
    """The store's switch for one kind of email (absent: on)."""

    __tablename__ = "notification_settings"

    kind: Mapped[str] = mapped_column(String(50), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class SenderProfile(Base):
    """What the store's emails say about the store, copied from identity's
    store_settings_changed events (one row)."""

    __tablename__ = "sender_profile"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reply_to: Mapped[str | None] = mapped_column(String(254), nullable=True)


class BouncingAddress(Base):
    """An address the mail server refused for good: later order emails to it are held back
    (SENT_TO_BOUNCING still go)."""

    __tablename__ = "bouncing_addresses"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    bounces: Mapped[int] = mapped_column(Integer, default=1)
    first_bounced_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_bounced_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
