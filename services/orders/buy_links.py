"""Direct-buy links: a merchant's prefilled cart behind a short link (/b/{code}) for social
pages, with the orders and revenue it brought."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from messaging.contracts.orders import BuyLinkInputSchema, BuyLinkUpdateSchema, OrdersError
from messaging.database import Database
from messaging.envelope import utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.links import StorefrontLinks
from services.orders import carts, domain, pricing_rules
from services.orders.models import (
    BuyLink,
    Order,
)
from services.orders.wire import (
    BUY_LINK,
)

log = logging.getLogger(__name__)


LINK_NOT_FOUND = (OrdersError.BUY_LINK_NOT_FOUND, "No such buy link.")


def _new_link_code() -> str:
    return "".join(secrets.choice(domain.BUY_LINK_ALPHABET)
                   for _ in range(domain.BUY_LINK_CODE_LENGTH))


def _link_views(session: Any, links: Any, storefront: StorefrontLinks
                ) -> list[dict[str, Any]]:
    """Links with their orders and revenue, counted from the orders themselves in one query:
    an order records its link once, so nothing (a redelivered event, say) counts it twice."""
    ids = [link.id for link in links]
    figures = {row.buy_link_id: row for row in session.execute(
        select(Order.buy_link_id, func.count().label("orders"),
               func.count().filter(Order.payment_status == "paid").label("paid_orders"),
               func.coalesce(func.sum(Order.total).filter(Order.payment_status == "paid"), 0)
               .label("revenue"), func.min(Order.currency).label("currency"))
        .where(Order.buy_link_id.in_(ids)).group_by(Order.buy_link_id))} if ids else {}
    views = []
    for link in links:
        row = figures.get(link.id)
        views.append(BUY_LINK.dump({
            "id": link.id, "code": link.code, "url": storefront.buy(link.code),
            "title": link.title, "lines": link.lines, "active": link.active,
            "created_by": link.created_by, "created_at": link.created_at,
            "disabled_at": link.disabled_at, "orders": row.orders if row else 0,
            "paid_orders": row.paid_orders if row else 0,
            "revenue": int(row.revenue) if row else 0,
            "currency": row.currency if row else None}))
    return views


def create_buy_link(db: Database, storefront: StorefrontLinks, request: dict[str, Any],
                    actor: str) -> dict[str, Any]:
    data = load_or_raise(BuyLinkInputSchema(), request)
    quantities = carts.cart_quantities(data["lines"])
    with db.transaction() as session:
        # The merchant links to what is for sale now, in one currency.
        pricing_rules.price_lines(quantities, carts.products(session, quantities))
        for _ in range(5):  # a clash of random codes is rare; try again, in a savepoint
            link = BuyLink(code=_new_link_code(), title=data["title"], created_by=actor,
                           lines=[{"sku": sku, "quantity": quantity}
                                  for sku, quantity in quantities.items()])
            try:
                with session.begin_nested():
                    session.add(link)
                    session.flush()
                break
            except IntegrityError:
                continue
        else:
            raise ServiceError(OrdersError.CODE_CLASH, "Could not pick a free link code.", 503)
        log.info("buy link created", extra={"code": link.code, "actor": actor})
        return _link_views(session, [link], storefront)[0]


def list_buy_links(db: Database, storefront: StorefrontLinks) -> list[dict[str, Any]]:
    with db.transaction() as session:
        links = session.scalars(select(BuyLink).order_by(BuyLink.created_at.desc())).all()
        return _link_views(session, links, storefront)


def update_buy_link(db: Database, storefront: StorefrontLinks, link_id: str,
                    request: dict[str, Any], actor: str) -> dict[str, Any]:
    data = load_or_raise(BuyLinkUpdateSchema(), request)
    with db.transaction() as session:
        link = session.get(BuyLink, domain.id_or_404(link_id, LINK_NOT_FOUND), with_for_update=True)
        if link is None:
            raise ServiceError(*LINK_NOT_FOUND, 404)
        if "title" in data:
            link.title = data["title"]
        if "active" in data and data["active"] != link.active:
            link.active = data["active"]
            link.disabled_at = None if link.active else utcnow()
            log.info("buy link %s", "enabled" if link.active else "disabled",
                     extra={"code": link.code, "actor": actor})
        session.flush()
        return _link_views(session, [link], storefront)[0]


def open_buy_link(db: Database, code: str, customer_id: str | None = None) -> dict[str, Any]:
    """What a shopper gets from /b/{code}: the link's cart at today's prices."""
    with db.transaction() as session:
        link = session.scalar(select(BuyLink).where(BuyLink.code == str(code).lower()))
        if link is None:
            raise ServiceError(OrdersError.BUY_LINK_NOT_FOUND, "No such link.", 404)
        if not link.active:
            raise ServiceError(OrdersError.BUY_LINK_DISABLED,
                               "The store has switched this link off.", 410)
        cart = carts.priced(session, [pricing_rules.WantedLine(line["sku"], line["quantity"])
                                 for line in link.lines], customer_id)
        return {**cart, "code": link.code, "title": link.title}
