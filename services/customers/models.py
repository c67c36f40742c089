"""Customers' own database: one record per normalised email, guest or registered."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    false,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from messaging.database import UtcDateTime
from messaging.envelope import utcnow
from messaging.outbox import add_messaging_tables


class Base(DeclarativeBase):
    pass


OUTBOX, PROCESSED_EVENTS = add_messaging_tables(Base.metadata)


class Customer(Base):
    __tablename__ = "customers"
    # Sort keys with their tie-breaker, so a page is an index walk. The search, name and
    # last-order keys are expression indexes, PostgreSQL only: migration customers_0007.
    __table_args__ = (Index("ix_customers_created_sort", "created_at", "id"),
                      Index("ix_customers_orders_sort", "orders_count", "id"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(30), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(10), nullable=True)
    type: Mapped[str] = mapped_column(String(16), default="guest", index=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, unique=True)
    # The account's status as identity last reported it, and when (events may arrive out of
    # order: only a newer report replaces an older one).
    account_status: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    account_status_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Figures kept from order events.
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    first_order_at: Mapped[datetime | None] = mapped_column(UtcDateTime(),
                                                            nullable=True)
    last_order_at: Mapped[datetime | None] = mapped_column(UtcDateTime(),
                                                           nullable=True, index=True)
    last_order_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_payment_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True, index=True)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Who the customer's invoices are for, from their latest order's billing address.
    billing_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    tax_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Grows at every change of the customer's categories (customer_categories_changed).
    categories_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Marketing consent, with when it was given and withdrawn (proof for the merchant).
    accepts_marketing: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false(), index=True)
    marketing_consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    marketing_withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime(),
                                                                    nullable=True)
    note: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # the merchant's
    # Set when the merchant erased this person: the row stays for the store's figures, with
    # nothing left that identifies anyone.
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    spend: Mapped[list[CustomerSpend]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="selectin"
    )


# The merchant list's search and sort keys. On PostgreSQL each has an index built on exactly
# this expression (migration customers_0007); change one only together with its index.
_BLANK, _SPACE = literal_column("''"), literal_column("' '")


def search_text() -> ColumnElement[str]:
    """What ``q`` searches: email, names and phone as one lower-cased string (a full name
    matches too). Trigram-indexed (ix_customers_search)."""
    parts = [func.coalesce(column, _BLANK) for column in (
        Customer.email, Customer.first_name, Customer.last_name, Customer.phone)]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.op("||")(_SPACE).op("||")(part)
    return func.lower(joined)


def name_sort_key() -> ColumnElement[str]:
    """A customer without a name (a digital-only guest) sorts by email."""
    return func.lower(func.coalesce(Customer.first_name.op("||")(_SPACE).op("||")(
        Customer.last_name), Customer.first_name, Customer.email))


class CustomerSpend(Base):
    """Total spent per currency: a store may sell in more than one. Every customer has a row
    for every currency in ``spend_currencies`` (zero until they pay), so the list sorts by
    spend walking one index (ix_customer_spend_sort) instead of joining every customer."""

    __tablename__ = "customer_spend"
    __table_args__ = (Index("ix_customer_spend_sort", "currency", "amount", "customer_id"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[int] = mapped_column(Integer, default=0)  # minor units

    customer: Mapped[Customer] = relationship(back_populates="spend")


class SpendCurrency(Base):
    """The currencies the store has sold in (one, for nearly every store)."""

    __tablename__ = "spend_currencies"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class Address(Base):
    """One of a customer's addresses; at most one default for shipping and one for billing."""

    __tablename__ = "addresses"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200), nullable=True)
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200), nullable=True)
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100), nullable=True)
    postal_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    country: Mapped[str] = mapped_column(String(2))
    phone: Mapped[str | None] = mapped_column(String(30), nullable=True)
    tax_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    default_shipping: Mapped[bool] = mapped_column(Boolean, default=False)
    default_billing: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Category(Base):
    """A merchant's group of customers ("Wholesale", "Customers from Spain")."""

    __tablename__ = "categories"
    # "Mayorista" and "mayorista" are one category: names are unique whatever their case.
    __table_args__ = (Index("uq_categories_name_lower", func.lower(text("name")), unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CustomerCategory(Base):
    __tablename__ = "customer_categories"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CustomerOrder(Base):
    """Each order as customers knows it, from order events: the figures are computed from
    these rows, so a payment, cancellation or refund corrects them rather than drifting."""

    __tablename__ = "customer_orders"
    # Insights read a period's orders from this index alone (PostgreSQL: with INCLUDE).
    __table_args__ = (Index("ix_customer_orders_placed", "placed_at", postgresql_include=[
        "customer_id", "status", "payment_status", "currency", "total"]),)

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    payment_status: Mapped[str] = mapped_column(String(32))
    refunded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
