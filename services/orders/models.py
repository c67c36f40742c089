"""Orders' own database: catalogue, orders with lines and history, counters, the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from messaging.database import UtcDateTime
from messaging.envelope import utcnow
from messaging.outbox import add_messaging_tables


class Base(DeclarativeBase):
    pass


OUTBOX, PROCESSED_EVENTS = add_messaging_tables(Base.metadata)


class Product(Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    # The title in other languages ({"en": "Logo mug"}): an order's lines take the title in
    # the order's language where there is one.
    titles: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    price: Mapped[int] = mapped_column(Integer)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unlimited
    digital: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow
    )


class Order(Base):
    __tablename__ = "orders"
    # Lists and exports walk (placed_at, id), by status too; the email search has a pg_trgm
    # index on lower(email) (PostgreSQL only: migration orders_0007).
    __table_args__ = (UniqueConstraint("recovery_token_hash",
                                       name="uq_orders_recovery_token_hash"),
                      Index("ix_orders_placed_sort", "placed_at", "id"),
                      Index("ix_orders_status_placed", "status", "placed_at", "id"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # On PostgreSQL the column's default draws it from order_number_seq (migration
    # orders_0014), returned by the INSERT itself; SQLite's checkout sets it from a counter.
    number: Mapped[int] = mapped_column(Integer, unique=True, server_default=FetchedValue())
    status: Mapped[str] = mapped_column(String(32), index=True)
    payment_status: Mapped[str] = mapped_column(String(32), index=True)
    fulfillment_status: Mapped[str] = mapped_column(String(32), index=True)
    payment_method: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254), index=True)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    locale: Mapped[str] = mapped_column(String(10))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(Integer)
    shipping_total: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    shipping_address: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Who the invoice is for: an address plus company and tax_id (NIF, RUT...); at checkout
    # it defaults to the shipping address.
    billing_address: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # A manual method's instructions as the shopper was given them (bank transfer details).
    payment_instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The provider's payment (Stripe: the PaymentIntent) once paid: refunds go through it.
    payment_reference: Mapped[str | None] = mapped_column(String(255), nullable=True)
    refunded_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Something the merchant must look at: paid_after_abandoned, paid_after_canceled.
    payment_alert: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    carrier: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tracking_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The checkout's Idempotency-Key (scoped by the gateway): a retry replays this order.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    # SHA-256 of the guest's order access token (the token itself is only in the email).
    access_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The same token sealed, so later emails about a guest's order link it too.
    access_token_sealed: Mapped[str | None] = mapped_column(String(500), nullable=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # "storefront" (a shopper's checkout) or "admin" (a manual order; created_by says who).
    channel: Mapped[str] = mapped_column(String(16), default="storefront",
                                         server_default="storefront")
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # An abandoned or canceled order's recovery link: the hash finds the order, the sealed
    # token lets staff fetch the same link again (GET /admin/orders/{id}/recovery-url).
    recovery_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recovery_token_sealed: Mapped[str | None] = mapped_column(String(500), nullable=True)
    recovered_from: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    # The direct-buy link the shopper came from, if any (its orders and revenue are counted
    # from here: the order is the only record, so a redelivered event cannot count twice).
    buy_link_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("buy_links.id", name="fk_orders_buy_link_id"),
        nullable=True, index=True)
    # The account offered after a guest checkout: claimable with the order's access token
    # until it expires, once (DESIGN §6; null: no offer was made, as for manual orders).
    account_offer_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(),
                                                                      nullable=True)
    account_offer_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(),
                                                                   nullable=True)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow
    )

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )
    history: Mapped[list[OrderHistory]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderHistory.id"
    )
    refunds: Mapped[list[Refund]] = relationship(
        cascade="all, delete-orphan", order_by="Refund.created_at")


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    line_total: Mapped[int] = mapped_column(Integer)
    digital: Mapped[bool] = mapped_column(Boolean, default=False)
    # The catalogue price when the customer's differed, and where the customer's came from
    # (catalogue, or the category id whose discount or price list applied).
    list_price: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price_source: Mapped[str | None] = mapped_column(String(64), nullable=True)

    order: Mapped[Order] = relationship(back_populates="lines")


class OrderHistory(Base):
    """Who changed what on an order, and when: the merchant's audit trail."""

    __tablename__ = "order_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    field: Mapped[str] = mapped_column(String(32))
    from_value: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_value: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # What the service wrote (domain.HISTORY_NOTES), or None for a person's change.
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)  # a person's words
    notify_customer: Mapped[bool] = mapped_column(Boolean, default=False)

    order: Mapped[Order] = relationship(back_populates="history")


class Cart(Base):
    """A logged-in customer's saved cart (one per account), so it follows them between
    devices. The row is also what concurrent changes to the cart lock."""

    __tablename__ = "carts"

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    lines: Mapped[list[CartLine]] = relationship(
        cascade="all, delete-orphan", order_by="CartLine.added_at, CartLine.sku")


class CartLine(Base):
    __tablename__ = "cart_lines"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("carts.customer_id", name="fk_cart_lines_cart"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    # The price the customer saw when they put it in: a change since then is shown.
    price_seen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class BuyLink(Base):
    """A merchant's direct-buy link (/b/{code}) for social pages: a prefilled cart."""

    __tablename__ = "buy_links"
    __table_args__ = (UniqueConstraint("code", name="uq_buy_links_code"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    lines: Mapped[list] = mapped_column(JSON)  # [{"sku": ..., "quantity": ...}]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class HoldWindow(Base):
    """How long an unpaid order holds its stock, per payment method, before it is abandoned
    (the merchant's setting; domain.DEFAULT_HOLD_MINUTES until changed)."""

    __tablename__ = "hold_windows"

    payment_method: Mapped[str] = mapped_column(String(32), primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer)


class CheckoutLimits(Base):
    """The merchant's limits on what one checkout, and one shopper's unpaid orders, may hold
    (one row; pricing_rules.DEFAULT_CHECKOUT_LIMITS until changed)."""

    __tablename__ = "checkout_limits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    max_units_per_product: Mapped[int] = mapped_column(Integer)
    max_units_per_order: Mapped[int] = mapped_column(Integer)
    max_unpaid_orders_per_email: Mapped[int] = mapped_column(Integer)


class Counter(Base):
    """Human order numbers (#1001, #1002, ...); ids stay UUIDs."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class PaymentSession(Base):
    """One attempt to pay an order at the provider (a Stripe Checkout Session, a test page).
    At most one is open per order: starting again while one is open answers the same one."""

    __tablename__ = "payment_sessions"
    __table_args__ = (UniqueConstraint("provider", "provider_session_id",
                                       name="uq_payment_sessions_provider_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_session_id: Mapped[str] = mapped_column(String(255))
    redirect_url: Mapped[str] = mapped_column(String(2000))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # open, paid, failed, expired
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ProviderEvent(Base):
    """A provider's webhook event, once: the same event delivered again changes nothing."""

    __tablename__ = "provider_events"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Refund(Base):
    """Money given back: through the provider (its refund id kept) or recorded by hand for a
    manual method."""

    __tablename__ = "refunds"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    provider_refund_id: Mapped[str | None] = mapped_column(String(255), nullable=True,
                                                           unique=True)
    actor: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CategoryPricing(Base):
    """What a customer category does to its members' prices (customers owns the category;
    orders owns prices, so it owns this, keyed by the category's id)."""

    __tablename__ = "category_pricing"

    category_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    price_display: Mapped[str] = mapped_column(String(8), default="shown")
    discount_percent: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CategoryPrice(Base):
    """A category's own price for one SKU (its price list)."""

    __tablename__ = "category_prices"

    category_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    price: Mapped[int] = mapped_column(Integer)


class CustomerMembership(Base):
    """Orders' copy of a registered customer's categories, from customers' events (newest
    version wins), so pricing a customer needs no call to customers."""

    __tablename__ = "customer_memberships"

    account_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    category_ids: Mapped[list] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
