"""Orders as their customers and the merchant read them: one order, a customer's history,
the merchant's filtered list, daily figures and the CSV export's pages."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from messaging.contracts.orders import OrdersError
from messaging.contracts.orders_admin import AdminOrderQuerySchema
from messaging.database import Database
from messaging.errors import VALIDATION_FAILED, ServiceError, load_or_raise
from messaging.keys import token_matches
from messaging.paging import after_marker, page_marker
from services.orders import domain
from services.orders.models import (
    Order,
)
from services.orders.wire import (
    ADMIN_ORDER,
    ADMIN_ORDERS,
    ADMIN_SUMMARIES,
    ORDER,
    ORDER_PAGE,
    ORDERS,
)

log = logging.getLogger(__name__)


def orders_of(account_id: Any, email: str) -> Any:
    """A customer's orders: the account's, and the email's guest orders."""
    match = and_(Order.customer_id.is_(None), Order.email == email.strip().lower())
    if account_id:
        match = or_(Order.customer_id == domain.id_or_404(str(account_id)), match)
    return match


def get_order(db: Database, order_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id))
        if order is None:
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        return ORDER.dump(order)


def get_guest_order(db: Database, order_id: str, token: str) -> dict[str, Any]:
    """A guest's view of their order, opened with the token from the confirmation email.
    A wrong token and a missing order look the same."""
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id))
        if order is None or not token_matches(str(token), order.access_token_hash):
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        return ORDER.dump(order)


def list_customer_orders(db: Database, customer_id: str, page: dict[str, Any]) -> dict[str, Any]:
    """A customer's orders, newest first; ``before`` (the last placed_at seen) pages on."""
    query = load_or_raise(ORDER_PAGE, page)
    with db.transaction() as session:
        statement = (select(Order).where(Order.customer_id == domain.id_or_404(customer_id))
                     .order_by(Order.placed_at.desc(), Order.id.desc())
                     .options(selectinload(Order.lines))  # one query for every line
                     .limit(query["limit"] + 1))
        if query["before"]:
            statement = statement.where(Order.placed_at < query["before"])
        orders = session.scalars(statement).all()
        items = ORDERS.dump(orders[:query["limit"]])
    more = len(orders) > query["limit"]
    return {"items": items, "next_before": items[-1]["placed_at"] if more else None}


def recent_orders_of(db: Database, account_id: str | None, email: str, limit: int = 10
                     ) -> list[dict[str, Any]]:
    """For the merchant's customer page: the account's orders and the email's guest
    orders, newest first."""
    with db.transaction() as session:
        orders = session.scalars(select(Order).where(orders_of(account_id, email))
                                 .order_by(Order.placed_at.desc())
                                 .options(selectinload(Order.lines))
                                 .limit(max(1, min(int(limit), 50)))).all()
        return ORDERS.dump(orders)


def get_customer_order(db: Database, customer_id: str, order_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id))
        if order is None or order.customer_id != domain.id_or_404(customer_id):
            raise ServiceError(OrdersError.ORDER_NOT_FOUND,
                               "No such order.", 404)  # not "forbidden"
        return ORDER.dump(order)


def get_admin_order(db: Database, order_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id))
        if order is None:
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        return ADMIN_ORDER.dump(order)


def list_admin_orders(db: Database, query: dict[str, Any]) -> dict[str, Any]:
    data = load_or_raise(AdminOrderQuerySchema(), query)
    filters: list[Any] = []
    for field in ("status", "payment_status", "fulfillment_status"):
        if field in data:
            filters.append(getattr(Order, field) == data[field])
    if "customer_id" in data:
        filters.append(Order.customer_id == data["customer_id"])
    if "buy_link" in data:
        filters.append(Order.buy_link_id == data["buy_link"])
    if "payment_alert" in data:
        filters.append(Order.payment_alert.is_not(None) if data["payment_alert"]
                       else Order.payment_alert.is_(None))
    if "email" in data:
        filters.append(Order.email == data["email"].strip().lower())
    if "q" in data:
        number = data["q"].lstrip("#")
        if domain.looks_like_email(data["q"]):  # the whole address: the email index
            match = Order.email == data["q"].strip().lower()
        else:  # a fragment: the trigram index (PostgreSQL)
            match = Order.email.icontains(data["q"], autoescape=True)
        filters.append(or_(Order.number == int(number), match) if number.isdigit()
                       else match)
    for field, op in (("placed_from", "ge"), ("placed_to", "lt")):
        if field in data:
            value = data[field] if data[field].tzinfo else data[field].replace(tzinfo=UTC)
            filters.append(Order.placed_at >= value if op == "ge"
                           else Order.placed_at < value)
    with db.transaction() as session:
        # Counted up to a cap: an exact count of a million orders costs more than the
        # page itself, and past 10,000 the merchant needs a filter, not a number.
        total = session.scalar(select(func.count()).select_from(
            select(Order.id).where(*filters).limit(domain.COUNT_CAP + 1).subquery()))
        statement = select(Order).where(*filters)
        if "before" in data:
            statement = statement.where(after_marker(Order.placed_at, Order.id,
                                                     data["before"]))
        orders = session.scalars(statement.order_by(Order.placed_at.desc(),
                                                    Order.id.desc())
                                 .options(selectinload(Order.lines))
                                 .limit(data["limit"] + 1)).all()
        page = orders[:data["limit"]]
        more = len(orders) > data["limit"]
        return {"items": ADMIN_SUMMARIES.dump(page),
                "total": min(total, domain.COUNT_CAP),
                "total_is_exact": total <= domain.COUNT_CAP,
                "next_before": (page_marker(page[-1].placed_at, page[-1].id)
                                if more else None)}


def order_stats(db: Database, first_day: str, last_day: str, currency: str) -> dict[str, Any]:
    """Orders placed, orders paid and paid revenue per day (UTC), for the admin's charts.
    Revenue counts orders whose payment is ``paid`` now: refunds and voids drop out."""
    try:
        first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    except (TypeError, ValueError):
        raise ServiceError(VALIDATION_FAILED, "Dates must look like 2026-01-31.",
                           422) from None
    if last < first or (last - first).days >= domain.STATS_MAX_DAYS:
        raise ServiceError(VALIDATION_FAILED,
                           f"The range must run forwards and span at most "
                           f"{domain.STATS_MAX_DAYS} days.", 422)
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    paid = Order.payment_status == "paid"
    with db.transaction() as session:
        placed = Order.placed_at
        if session.get_bind().dialect.name == "postgresql":  # days in UTC, whatever TimeZone
            placed = func.timezone("UTC", Order.placed_at)
        day = func.date(placed).label("day")
        rows = session.execute(
            select(day, func.count().label("orders"),
                   func.count().filter(paid).label("paid_orders"),
                   func.coalesce(func.sum(Order.total).filter(paid), 0).label("revenue"))
            .where(Order.placed_at >= start, Order.placed_at < end,
                   Order.currency == currency)
            .group_by(day)).mappings().all()
    series = domain.daily_series(rows, first, last)
    return {"currency": currency, "from": first.isoformat(), "to": last.isoformat(),
            "days": series,
            "orders": sum(d["orders"] for d in series),
            "paid_orders": sum(d["paid_orders"] for d in series),
            "revenue": sum(d["revenue"] for d in series)}


def export_page(db: Database, placed_from: str, placed_to: str, after: str | None,
                limit: int = 500, status: str | None = None) -> dict[str, Any]:
    """One page of orders placed in [from, to), oldest first, for the CSV export: a row
    per order line, the order's fields repeated."""
    try:
        start, end = datetime.fromisoformat(placed_from), datetime.fromisoformat(placed_to)
    except ValueError:
        raise ServiceError(VALIDATION_FAILED, "Not a valid date range.", 422) from None
    statement = select(Order).where(Order.placed_at >= start, Order.placed_at < end)
    if status:
        statement = statement.where(Order.status == status)
    if after:
        statement = statement.where(after_marker(Order.placed_at, Order.id, after, "after",
                                                 descending=False))
    with db.transaction() as session:
        # The lines of the whole page in one query (not one per order).
        orders = session.scalars(statement.order_by(Order.placed_at, Order.id)
                                 .options(selectinload(Order.lines))
                                 .limit(max(1, min(int(limit), 1000)))).all()
        rows = [{
            "number": f"#{o.number}", "placed_at": o.placed_at.isoformat(),
            "status": o.status, "payment_status": o.payment_status,
            "fulfillment_status": o.fulfillment_status, "payment_method": o.payment_method,
            "email": o.email, "customer_id": str(o.customer_id or ""),
            "currency": o.currency, "subtotal": o.subtotal,
            "shipping_total": o.shipping_total, "total": o.total,
            "country": (o.shipping_address or {}).get("country", ""),
            "city": (o.shipping_address or {}).get("city", ""),
            "carrier": o.carrier or "", "tracking_number": o.tracking_number or "",
            **domain.billing_columns(o.billing_address), "refunded_total": o.refunded_total,
            "sku": line.sku, "title": line.title, "quantity": line.quantity,
            "unit_price": line.unit_price, "line_total": line.line_total,
            "list_price": line.list_price, "price_source": line.price_source or "",
        } for o in orders for line in o.lines]
        last = orders[-1] if orders else None
    return {"rows": rows, "after": page_marker(last.placed_at, last.id) if last else None}


def export_orders_of(db: Database, account_id: str | None, email: str) -> list[dict[str, Any]]:
    """Every order of a customer, whole (lines, history), for their data export."""
    with db.transaction() as session:
        orders = session.scalars(select(Order).where(orders_of(account_id, email))
                                 .order_by(Order.placed_at)).all()
        return ADMIN_ORDERS.dump(orders)
