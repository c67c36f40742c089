"""Identity's own database. The backbone holds the store settings; accounts come next."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    locale: Mapped[str] = mapped_column(String(10), default="es")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    store_name: Mapped[str] = mapped_column(String(100), default="Clientela Store")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow,
                                                 onupdate=utcnow)


class StoreSettingsChange(Base):
    """History of settings changes: who changed what, from what, to what."""

    __tablename__ = "store_settings_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    changes: Mapped[dict] = mapped_column(JSON)  # {field: [from, to]}
