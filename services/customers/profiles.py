"""Customer records as the merchant and the customer edit them: create, update, delete,
erase, export; the customer's own profile; the merchant's customer page."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import (
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from messaging.contracts import (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
)
from messaging.contracts.customers import (
    AddressSchemaOut,
    CustomerSchema,
    CustomersError,
    CustomerUpdateSchema,
    ProfileUpdateSchema,
)
from messaging.database import Database
from messaging.envelope import utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.outbox import emit
from services.customers import domain, records
from services.customers.models import (
    Address,
    Category,
    Customer,
    CustomerCategory,
    CustomerOrder,
    CustomerSpend,
)
from services.customers.records import (
    PROFILE,
    add_new,
    addresses_of,
    customer_event,
    customer_exists,
    customer_or_404,
    own_record,
)
from services.customers.schemas import CustomerCreateSchema

log = logging.getLogger(__name__)


def get_customer_by_email(db: Database, email: str) -> dict[str, Any]:
    with db.transaction() as session:
        customer = session.scalars(
            select(Customer).where(Customer.email == domain.normalise_email(email))
        ).first()
        if customer is None:
            raise ServiceError(CustomersError.CUSTOMER_NOT_FOUND, "No such customer.", 404)
        return CustomerSchema().dump(customer)


def get_customer(db: Database, customer_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        customer = customer_or_404(session, customer_id)
        return CustomerSchema().dump(customer)


def create_customer(db: Database, request: dict[str, Any], actor: str) -> dict[str, Any]:
    """A customer the merchant adds by hand (no account; see identity.invite_account)."""
    data = load_or_raise(CustomerCreateSchema(), request)
    try:
        with db.transaction() as session:
            if records.by_email(session, data["email"]) is not None:
                raise customer_exists()
            customer = Customer(type="guest", orders_count=0, **data)
            add_new(session, customer)
            emit(session, CUSTOMER_CREATED, customer_event(customer))
            return CustomerSchema().dump(customer)
    except IntegrityError:
        raise customer_exists() from None


def update_customer(db: Database, customer_id: str, request: dict[str, Any], actor: str
                    ) -> dict[str, Any]:
    """The merchant edits a customer: names, phone, language, note, consent; the email
    only while there is no account (an account's email changes with proof, in identity)."""
    data = load_or_raise(CustomerUpdateSchema(), request)
    try:
        with db.transaction() as session:
            customer = customer_or_404(session, customer_id, lock=True)
            if customer.erased_at is not None:
                raise ServiceError(CustomersError.CUSTOMER_ERASED,
                                   "This customer's data was erased.", 409)
            if "email" in data and data["email"] != customer.email:
                if customer.account_id is not None:
                    raise ServiceError(
                        CustomersError.EMAIL_BELONGS_TO_ACCOUNT,
                        "This customer has an account: they change their email "
                        "themselves, with confirmation.", 409)
                if records.by_email(session, data["email"]) is not None:
                    raise customer_exists()
            if "accepts_marketing" in data:
                domain.set_marketing_consent(customer, data.pop("accepts_marketing"),
                                             utcnow())
            for field, value in data.items():
                setattr(customer, field, value)
            session.flush()
            emit(session, CUSTOMER_UPDATED, customer_event(customer))
            log.info("customer updated", extra={"customer_id": str(customer.id),
                                                "actor": actor,
                                                "fields": sorted(request)})
            return CustomerSchema().dump(customer)
    except IntegrityError:
        raise customer_exists() from None


def delete_customer(db: Database, customer_id: str, actor: str) -> None:
    """Remove a customer who never ordered (a mistaken entry, a test account), with their
    account. One with orders is erased instead: the store keeps its order records."""
    with db.transaction() as session:
        customer = customer_or_404(session, customer_id, lock=True)
        if session.scalar(select(func.count()).select_from(CustomerOrder)
                          .where(CustomerOrder.customer_id == customer.id)):
            raise ServiceError(
                CustomersError.CUSTOMER_HAS_ORDERS,
                "This customer has orders, which the store must keep: erase their "
                "personal data instead (POST /admin/customers/{id}/erase).", 409)
        records.forget(session, customer, deleted=True)
        session.execute(delete(Address).where(Address.customer_id == customer.id))
        session.execute(delete(CustomerSpend)
                        .where(CustomerSpend.customer_id == customer.id))
        session.delete(customer)
        log.info("customer deleted", extra={"customer_id": customer_id, "actor": actor})


def erase_customer(db: Database, customer_id: str, actor: str) -> dict[str, Any]:
    """Erase a person's data here and, through ``customer_erased``, in every service.
    The record stays, anonymous, so the store's figures still add up. Idempotent."""
    with db.transaction() as session:
        customer = customer_or_404(session, customer_id, lock=True)
        if customer.erased_at is None:
            records.forget(session, customer, deleted=False)
            log.info("customer erased", extra={"customer_id": customer_id,
                                               "actor": actor})
        return {"customer_id": str(customer.id), "erased_at": customer.erased_at.isoformat(),
                "status": "erased"}


def export_customer(db: Database, customer_id: str) -> dict[str, Any]:
    """All this service holds about a customer (the gateway adds the other services')."""
    with db.transaction() as session:
        customer = customer_or_404(session, customer_id)
        categories = session.scalars(
            select(Category.name).join(CustomerCategory)
            .where(CustomerCategory.customer_id == customer.id).order_by(Category.name)
        ).all()
        ledger = session.scalars(select(CustomerOrder)
                                 .where(CustomerOrder.customer_id == customer.id)
                                 .order_by(CustomerOrder.placed_at)).all()
        return {
            "customer": CustomerSchema().dump(customer),
            "addresses": AddressSchemaOut(many=True).dump(addresses_of(session, customer.id)),
            "categories": list(categories),
            "order_ledger": [{"order_id": str(o.order_id), "placed_at": o.placed_at.isoformat(),
                        "status": o.status, "payment_status": o.payment_status,
                        "currency": o.currency, "total": o.total} for o in ledger],
        }


def get_profile(db: Database, account_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        return PROFILE.dump(own_record(session, account_id))


def update_profile(db: Database, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
    data = load_or_raise(ProfileUpdateSchema(), request)
    with db.transaction() as session:
        customer = own_record(session, account_id, lock=True)
        if "accepts_marketing" in data:
            domain.set_marketing_consent(customer, data.pop("accepts_marketing"), utcnow())
        for field, value in data.items():
            setattr(customer, field, value)
        emit(session, CUSTOMER_UPDATED, customer_event(customer))
        return PROFILE.dump(customer)


def get_customer_detail(db: Database, customer_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        customer = customer_or_404(session, customer_id)
        categories = session.scalars(
            select(Category).join(CustomerCategory)
            .where(CustomerCategory.customer_id == customer.id).order_by(Category.name)
        ).all()
        return {
            **CustomerSchema().dump(customer),
            "addresses": AddressSchemaOut(many=True).dump(addresses_of(session, customer.id)),
            "categories": [{"id": str(c.id), "name": c.name} for c in categories],
        }
