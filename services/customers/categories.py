"""Customer categories and who is in them; each change is announced to orders, whose prices
follow memberships."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import (
    Uuid,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import IntegrityError

from messaging.contracts import (
    CATEGORY_DELETED,
)
from messaging.contracts.customers import CategoryInputSchema
from messaging.database import Database, UtcDateTime
from messaging.envelope import utcnow
from messaging.errors import load_or_raise
from messaging.outbox import emit
from services.customers.models import (
    Category,
    Customer,
    CustomerCategory,
)
from services.customers.records import (
    FILTER_QUERY,
    announce_categories,
    category_exists,
    category_or_404,
    customer_filters,
    customer_or_404,
)

log = logging.getLogger(__name__)


def list_categories(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as session:
        rows = session.execute(
            select(Category, func.count(CustomerCategory.customer_id).label("customers"))
            .outerjoin(CustomerCategory).group_by(Category.id).order_by(Category.name)
        ).all()
        return [{"id": str(c.id), "name": c.name, "customers": n} for c, n in rows]


def create_category(db: Database, request: dict[str, Any]) -> dict[str, Any]:
    data = load_or_raise(CategoryInputSchema(), request)
    try:
        with db.transaction() as session:
            category = Category(name=data["name"])
            session.add(category)
            session.flush()
            return {"id": str(category.id), "name": category.name, "customers": 0}
    except IntegrityError:
        raise category_exists() from None


def rename_category(db: Database, category_id: str, request: dict[str, Any]) -> dict[str, Any]:
    data = load_or_raise(CategoryInputSchema(), request)
    try:
        with db.transaction() as session:
            category = category_or_404(session, category_id)
            category.name = data["name"]
            session.flush()
            members = session.scalar(select(func.count()).select_from(CustomerCategory)
                                     .where(CustomerCategory.category_id == category.id))
            return {"id": str(category.id), "name": category.name, "customers": members}
    except IntegrityError:
        raise category_exists() from None


def get_category(db: Database, category_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        category = category_or_404(session, category_id)
        members = session.scalar(select(func.count()).select_from(CustomerCategory)
                                 .where(CustomerCategory.category_id == category.id))
        return {"id": str(category.id), "name": category.name, "customers": members}


def delete_category(db: Database, category_id: str, actor: str = "staff") -> None:
    """The category goes; its customers stay (only their membership is removed), and
    orders drops its price list."""
    with db.transaction() as session:
        category = category_or_404(session, category_id)
        members = list(session.scalars(select(CustomerCategory.customer_id).where(
            CustomerCategory.category_id == category.id)))
        session.execute(delete(CustomerCategory)
                        .where(CustomerCategory.category_id == category.id))
        session.delete(category)
        emit(session, CATEGORY_DELETED, {"category_id": category.id, "actor": actor})
        session.flush()
        announce_categories(session, members)


def add_members_by_filter(db: Database, category_id: str, query: dict[str, Any]) -> dict[str, int]:
    """Put every customer the list's filters match into a category, in one statement
    (customers already in it stay as they are). An empty filter means everyone."""
    data = load_or_raise(FILTER_QUERY, query)
    with db.transaction() as session:
        category = category_or_404(session, category_id)
        already = exists().where(CustomerCategory.customer_id == Customer.id,
                                 CustomerCategory.category_id == category.id)
        matching = select(Customer.id, literal(category.id, Uuid()),
                          literal(utcnow(), UtcDateTime())).where(
            *customer_filters(data), Customer.erased_at.is_(None), ~already)
        added_ids = list(session.scalars(insert(CustomerCategory).from_select(
            ["customer_id", "category_id", "added_at"], matching)
            .returning(CustomerCategory.customer_id)))
        added = len(added_ids)
        announce_categories(session, added_ids)
        total = session.scalar(select(func.count()).select_from(CustomerCategory)
                               .where(CustomerCategory.category_id == category.id))
        return {"added": added, "customers": total}


def set_membership(db: Database, category_id: str, customer_id: str, member: bool) -> None:
    """Idempotent: adding a member twice, or removing a non-member, changes nothing."""
    with db.transaction() as session:
        category = category_or_404(session, category_id)
        customer = customer_or_404(session, customer_id)
        existing = session.get(CustomerCategory, (customer.id, category.id))
        if member and existing is None:
            session.add(CustomerCategory(customer_id=customer.id, category_id=category.id))
        elif not member and existing is not None:
            session.delete(existing)
        else:
            return
        session.flush()
        announce_categories(session, [customer.id])
