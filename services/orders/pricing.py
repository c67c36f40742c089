"""Prices per customer category: the merchant's price lists, orders' copy of who is in which
category (from customers' events), and the terms that price one customer.

Every place a price is computed (the catalogue, saved carts, checkout, buy links, recovery
carts, manual orders) asks ``terms_for`` and prices with ``pricing_rules.customer_price``: one rule.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from messaging.contracts import load_payload
from messaging.contracts.orders import OrdersError
from messaging.contracts.orders_admin import CategoryPriceListSchema, CategoryPricingSchema
from messaging.database import Database
from messaging.envelope import Envelope, utcnow
from messaging.errors import VALIDATION_FAILED, ServiceError, load_or_raise
from services.orders import domain, pricing_rules
from services.orders.models import CategoryPrice, CategoryPricing, CustomerMembership, Product

log = logging.getLogger(__name__)

MAX_PRICE_LIST = 10_000  # SKUs in one category's list
CATEGORY_NOT_FOUND = (OrdersError.CATEGORY_NOT_FOUND, "No such category.")


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


def terms_for(session: Session, customer_id: Any, skus: Iterable[str] | None = None
              ) -> list[pricing_rules.CategoryTerms]:
    """The pricing terms of the customer's categories (none for a guest or a customer in no
    category: then nothing more is read). ``skus``: only these SKUs' list prices."""
    account_id = _as_uuid(customer_id) if customer_id is not None else None
    if account_id is None:
        return []
    membership = session.get(CustomerMembership, account_id)
    if membership is None or not membership.category_ids:
        return []
    ids = [uuid.UUID(str(c)) for c in membership.category_ids]
    pricing = {row.category_id: row for row in session.scalars(
        select(CategoryPricing).where(CategoryPricing.category_id.in_(ids)))}
    price_query = select(CategoryPrice).where(CategoryPrice.category_id.in_(ids))
    if skus is not None:
        price_query = price_query.where(CategoryPrice.sku.in_(list(skus)))
    prices: dict[uuid.UUID, dict[str, int]] = {}
    for row in session.scalars(price_query):
        prices.setdefault(row.category_id, {})[row.sku] = row.price
    return [pricing_rules.CategoryTerms(
        category_id=str(category_id),
        hidden=category_id in pricing and pricing[category_id].price_display == "hidden",
        discount_percent=pricing[category_id].discount_percent if category_id in pricing else 0,
        prices=prices.get(category_id, {})) for category_id in ids]


def price_view(product: Product, terms: list[pricing_rules.CategoryTerms], visible: bool = True
               ) -> dict[str, Any]:
    """A product's price as this caller sees it: price (null: not shown to them), list_price
    when theirs differs, and where theirs comes from."""
    price = pricing_rules.customer_price(product.sku, product.price, terms)
    if not visible:
        return {"price": None, "list_price": None, "price_source": None}
    return {"price": price.price,
            "list_price": product.price if price.price not in (None, product.price) else None,
            "price_source": price.source}


# the merchant's price lists --------------------------------------------------------------
def get_pricing(session: Session, category_id: uuid.UUID) -> dict[str, Any]:
    row = session.get(CategoryPricing, category_id)
    return {"category_id": str(category_id),
            "price_display": row.price_display if row else "shown",
            "discount_percent": row.discount_percent if row else 0}


def set_pricing(session: Session, category_id: uuid.UUID, data: dict[str, Any], actor: str
                ) -> dict[str, Any]:
    row = session.get(CategoryPricing, category_id, with_for_update=True)
    if row is None:
        row = CategoryPricing(category_id=category_id, price_display="shown",
                              discount_percent=0)
        session.add(row)
    for key in ("price_display", "discount_percent"):
        if key in data:
            setattr(row, key, data[key])
    row.updated_at, row.updated_by = utcnow(), actor
    session.flush()
    return get_pricing(session, category_id)


def get_prices(session: Session, category_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.execute(
        select(CategoryPrice.sku, CategoryPrice.price, Product.price.label("list_price"),
               Product.currency, Product.title)
        .join(Product, Product.sku == CategoryPrice.sku, isouter=True)
        .where(CategoryPrice.category_id == category_id).order_by(CategoryPrice.sku)).all()
    return [{"sku": r.sku, "price": r.price, "list_price": r.list_price,
             "currency": r.currency, "title": r.title} for r in rows]


def replace_prices(session: Session, category_id: uuid.UUID, entries: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """The category's whole price list becomes ``entries``: SKUs the catalogue has, each
    once."""
    skus = [entry["sku"] for entry in entries]
    duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
    if duplicates:
        raise ServiceError(VALIDATION_FAILED, "Each SKU once.", 422,
                           errors={"prices": [f"{sku} appears more than once"
                                              for sku in duplicates[:20]]})
    known = set(session.scalars(select(Product.sku).where(Product.sku.in_(skus))))
    unknown = [sku for sku in skus if sku not in known]
    if unknown:
        raise ServiceError(OrdersError.UNKNOWN_PRODUCT, "Some SKUs are not in the catalogue.", 422,
                           errors={"prices": [f"{sku}: unknown SKU" for sku in unknown[:20]]})
    session.execute(delete(CategoryPrice).where(CategoryPrice.category_id == category_id))
    session.add_all(CategoryPrice(category_id=category_id, sku=entry["sku"],
                                  price=entry["price"]) for entry in entries)
    session.flush()
    return get_prices(session, category_id)


# the read model of memberships -------------------------------------------------------------
def apply_membership(session: Session, account_id: uuid.UUID, category_ids: list[Any],
                     version: int) -> bool:
    """Keep the newest list of a customer's categories: an older or repeated version (a
    redelivery, events out of order) changes nothing. True if it changed."""
    row = session.get(CustomerMembership, account_id, with_for_update=True)
    if row is not None and row.version >= version:
        return False
    ids = sorted(str(c) for c in category_ids)
    if row is None:
        session.add(CustomerMembership(account_id=account_id, category_ids=ids,
                                       version=version, updated_at=utcnow()))
    else:
        row.category_ids, row.version, row.updated_at = ids, version, utcnow()
    session.flush()
    return True


def forget_category(session: Session, category_id: uuid.UUID) -> None:
    """A deleted category's price list goes (its members' memberships follow by their own
    events)."""
    session.execute(delete(CategoryPrice).where(CategoryPrice.category_id == category_id))
    session.execute(delete(CategoryPricing).where(CategoryPricing.category_id == category_id))


def get_category_pricing(db: Database, category_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        return get_pricing(session, domain.id_or_404(category_id, CATEGORY_NOT_FOUND))


def set_category_pricing(db: Database, category_id: str, request: dict[str, Any], actor: str
                         ) -> dict[str, Any]:
    data = load_or_raise(CategoryPricingSchema(), request)
    with db.transaction() as session:
        result = set_pricing(session, domain.id_or_404(category_id, CATEGORY_NOT_FOUND),
                                     data, actor)
    log.info("category pricing set", extra={"actor": actor, **result})
    return result


def get_category_prices(db: Database, category_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        return {"prices": get_prices(session,
                                             domain.id_or_404(category_id, CATEGORY_NOT_FOUND))}


def set_category_prices(db: Database, category_id: str, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
    data = load_or_raise(CategoryPriceListSchema(), request)
    with db.transaction() as session:
        prices = replace_prices(session, domain.id_or_404(category_id, CATEGORY_NOT_FOUND),
                                        data["prices"])
    log.info("category prices set", extra={"actor": actor, "skus": len(prices)})
    return {"prices": prices}


def handle_customer_categories_changed(db: Database, envelope: Envelope) -> None:
    """Orders' copy of a customer's categories: the newest version wins, so a redelivered
    or overtaken event leaves it right."""
    change = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        apply_membership(session, change["account_id"], change["category_ids"],
                                 change["version"])


def handle_category_deleted(db: Database, envelope: Envelope) -> None:
    deleted = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        forget_category(session, deleted["category_id"])
