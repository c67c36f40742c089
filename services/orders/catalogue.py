"""The catalogue: products with their prices, stock and titles, at the caller's prices."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from messaging.contracts.orders import OrdersError, ProductSchema
from messaging.contracts.orders_admin import ProductInputSchema, ProductUpdateSchema
from messaging.database import Database
from messaging.errors import ServiceError, load_or_raise
from services.orders import pricing
from services.orders.models import (
    Product,
)
from services.orders.wire import (
    PRODUCTS,
)

log = logging.getLogger(__name__)


def list_products(db: Database, customer_id: str | None = None, prices_visible: bool = True
                  ) -> list[dict[str, Any]]:
    """The active catalogue at the caller's prices (a customer's categories may change
    them; ``prices_visible`` false: no prices at all, as the store setting asks)."""
    with db.transaction() as session:
        products = session.scalars(
            select(Product).where(Product.active.is_(True)).order_by(Product.sku)
        ).all()
        terms = pricing.terms_for(session, customer_id) if prices_visible else []
        return [{**view, **pricing.price_view(product, terms, prices_visible)}
                for view, product in zip(PRODUCTS.dump(products), products, strict=True)]


def list_all_products(db: Database) -> list[dict[str, Any]]:
    """The whole catalogue for the merchant, inactive products included."""
    with db.transaction() as session:
        return PRODUCTS.dump(session.scalars(select(Product).order_by(Product.sku)).all())


def create_product(db: Database, request: dict[str, Any]) -> dict[str, Any]:
    data = load_or_raise(ProductInputSchema(), request)
    try:
        with db.transaction() as session:
            product = Product(**data)
            session.add(product)
            session.flush()
            return ProductSchema().dump(product)
    except IntegrityError:
        raise ServiceError(OrdersError.PRODUCT_EXISTS, "A product with this SKU exists.",
                           409) from None


def update_product(db: Database, sku: str, request: dict[str, Any]) -> dict[str, Any]:
    """Change a product; stock is set as counted (null: unlimited). Orders already
    placed keep the price they were placed at."""
    data = load_or_raise(ProductUpdateSchema(partial=True), request)
    with db.transaction() as session:
        product = session.get(Product, str(sku)[:64], with_for_update=True)
        if product is None:
            raise ServiceError(OrdersError.PRODUCT_NOT_FOUND, "No such product.", 404)
        for field, value in data.items():
            setattr(product, field, value)
        session.flush()
        return ProductSchema().dump(product)
