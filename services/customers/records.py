"""Customer records: finding, creating and describing them, the figures kept from their
orders, and the lookups every customers use case shares."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError

from messaging.contracts import (
    CUSTOMER_CATEGORIES_CHANGED,
    CUSTOMER_CREATED,
    CUSTOMER_ERASED,
)
from messaging.contracts.customers import (
    CustomerFilterSchema,
    CustomerListQuerySchema,
    CustomerSchema,
    CustomersError,
    ProfileSchema,
)
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError
from messaging.keys import seal
from messaging.outbox import emit, forget_in_outbox
from services.customers import domain
from services.customers.models import (
    Address,
    Category,
    Customer,
    CustomerCategory,
    CustomerOrder,
    CustomerSpend,
    SpendCurrency,
    search_text,
)

log = logging.getLogger(__name__)


PROFILE, CUSTOMERS, LIST_QUERY = ProfileSchema(), CustomerSchema(many=True), \
    CustomerListQuerySchema()
FILTER_QUERY = CustomerFilterSchema()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME_SORTS = {"last_order_at", "created_at"}


def cursor_value(column: str, value: Any) -> Any:
    if column in _DATETIME_SORTS:
        return datetime.fromisoformat(str(value))
    if column in ("total_spent", "orders_count"):
        return int(value)
    return str(value)


def count_statement(data: dict[str, Any], filters: list[Any]) -> Any:
    if set(data) - {"sort", "limit", "currency", "cursor"} == {"category"}:
        # A category alone: count its members (each row is a live customer) rather than
        # joining every customer to them.
        return select(func.count()).select_from(CustomerCategory).where(
            CustomerCategory.category_id == data["category"])
    return select(func.count()).select_from(Customer).where(*filters)


def customer_filters(data: dict[str, Any]) -> list[Any]:
    filters: list[Any] = []
    if "q" in data:
        filters.append(search_text().contains(data["q"].lower(), autoescape=True))
    if "type" in data:
        filters.append(Customer.type == data["type"])
    if "has_account" in data:
        filters.append(Customer.account_id.is_not(None) if data["has_account"]
                       else Customer.account_id.is_(None))
    if "account_status" in data:
        filters.append(Customer.account_status == data["account_status"])
    if "category" in data:
        filters.append(exists().where(CustomerCategory.customer_id == Customer.id,
                                      CustomerCategory.category_id == data["category"]))
    if "country" in data:
        filters.append(Customer.country == data["country"].upper())
    if "min_orders" in data:
        filters.append(Customer.orders_count >= data["min_orders"])
    if "accepts_marketing" in data:
        filters.append(Customer.accepts_marketing.is_(data["accepts_marketing"]))
    for field, column, op in (("created_from", Customer.created_at, "ge"),
                              ("created_to", Customer.created_at, "lt"),
                              ("last_order_from", Customer.last_order_at, "ge"),
                              ("last_order_to", Customer.last_order_at, "lt")):
        if field in data:
            value = data[field] if data[field].tzinfo else data[field].replace(tzinfo=UTC)
            filters.append(column >= value if op == "ge" else column < value)
    return filters


def linked_record(session: Any, account_id: Any) -> Customer | None:
    """The customer record linked to an account, locked (none while the email is unproven
    and a guest record holds it)."""
    return session.scalars(select(Customer).where(Customer.account_id == account_id)
                           .with_for_update()).first()


def occurred_at(envelope: Envelope) -> datetime:
    return datetime.fromisoformat(envelope.occurred_at)


def customer_or_404(session: Any, customer_id: str, lock: bool = False) -> Customer:
    customer = session.get(Customer, _uuid(customer_id), with_for_update=lock)
    if customer is None:
        raise ServiceError(CustomersError.CUSTOMER_NOT_FOUND, "No such customer.", 404)
    return customer


def customer_exists() -> ServiceError:
    return ServiceError(CustomersError.CUSTOMER_EXISTS, "A customer with this email exists.", 409)


def announce_categories(session: Any, customer_ids: Any, only_members: bool = False) -> None:
    """Tell orders each registered customer's categories, whole, with a version that grows at
    every change (prices follow memberships; a late or repeated event cannot undo a newer
    one). ``only_members``: skip customers in no category (a new account, say)."""
    ids = list(customer_ids)
    if not ids:
        return
    customers = session.scalars(select(Customer).where(
        Customer.id.in_(ids), Customer.account_id.is_not(None)).with_for_update()).all()
    held: dict[Any, list[Any]] = {customer.id: [] for customer in customers}
    for customer_id, category_id in session.execute(
            select(CustomerCategory.customer_id, CustomerCategory.category_id)
            .where(CustomerCategory.customer_id.in_(list(held)))):
        held[customer_id].append(category_id)
    for customer in customers:
        if only_members and not held[customer.id]:
            continue
        customer.categories_version = (customer.categories_version or 0) + 1
        emit(session, CUSTOMER_CATEGORIES_CHANGED, {
            "customer_id": customer.id, "account_id": customer.account_id,
            "category_ids": sorted(held[customer.id], key=str),
            "version": customer.categories_version})


def category_or_404(session: Any, category_id: str) -> Category:
    category = session.get(Category, _uuid(category_id, CustomersError.CATEGORY_NOT_FOUND))
    if category is None:
        raise ServiceError(CustomersError.CATEGORY_NOT_FOUND, "No such category.", 404)
    return category


def category_exists() -> ServiceError:
    return ServiceError(CustomersError.CATEGORY_EXISTS, "A category with this name exists.", 409)


def as_aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_guest(session: Any, email: str, customer_id: Any = None,
              currencies: list[str] | None = None, order: dict[str, Any] | None = None,
              order_row: CustomerOrder | None = None) -> Customer:
    """A guest record for an email no customer has yet (with the account's id when an
    account's order comes before the account's own event). ``order`` and its ledger row
    are folded in before the insert: one INSERT, no UPDATE after it."""
    if currencies is None:
        currencies = spend_currencies(session)
    customer = guest(email, customer_id, currencies)
    if order is not None:
        domain.apply_order_placed(customer, order)
    if order_row is not None:
        count_new_order(customer, order_row)
    session.add(customer)
    session.flush()
    return customer


def guest(email: str, customer_id: Any, currencies: list[str]) -> Customer:
    """A guest record, not yet added to a session: its id is set now (the account's, when an
    account's order comes before the account's own event), so rows can refer to it before
    it is flushed."""
    customer = Customer(id=customer_id or uuid.uuid4(), email=email, type="guest",
                        orders_count=0)
    customer.spend = [CustomerSpend(customer_id=customer.id, currency=currency, amount=0)
                      for currency in currencies]
    return customer


def add_new(session: Any, customer: Customer, currencies: list[str] | None = None) -> None:
    """A new customer, with a zero spend row in every currency the store sells in (the
    caller may have read them already: ``currencies``)."""
    if currencies is None:
        currencies = spend_currencies(session)
    customer.spend = [CustomerSpend(currency=currency, amount=0) for currency in currencies]
    session.add(customer)
    session.flush()


def spend_currencies(session: Any) -> list[str]:
    return list(session.scalars(_SPEND_CURRENCIES))


def know_currency(session: Any, currency: str, known: list[str] | None = None) -> None:
    """The first order in a new currency (once in a store's life, usually): give every
    customer a zero row in it, so sorting by spend in it can walk the spend index.
    ``known``: the currencies the caller has read in this transaction."""
    already = currency in known if known is not None \
        else session.get(SpendCurrency, currency) is not None
    if already:
        return
    try:
        with session.begin_nested():
            session.add(SpendCurrency(currency=currency))
            session.flush()
    except IntegrityError:
        # Another handler's first order in it, at the same moment: that one's insert
        # committed (ours waited for it), zero rows and all.
        return
    session.execute(insert(CustomerSpend).from_select(
        ["customer_id", "currency", "amount"],
        select(Customer.id, literal(currency), literal(0)).where(~exists().where(
            CustomerSpend.customer_id == Customer.id, CustomerSpend.currency == currency))))
    session.expire_all()  # loaded customers' spend lists are missing the new rows
    if known is not None:
        known.append(currency)


def count_new_order(customer: Customer, row: CustomerOrder) -> None:
    """Fold an order the ledger did not hold into the customer's figures: the same result
    as recompute_figures, from the order's own delta instead of two aggregate queries."""
    if row.status in domain.COUNTED_STATUSES:
        customer.orders_count = (customer.orders_count or 0) + 1
        if row.payment_status in domain.SPENT_PAYMENT_STATUSES:
            amount = row.total - (row.refunded or 0)
            spend = next((s for s in customer.spend if s.currency == row.currency), None)
            if spend is None:
                customer.spend.append(CustomerSpend(currency=row.currency, amount=amount))
            else:
                spend.amount += amount


def recompute_figures(session: Any, customer: Customer) -> None:
    """Orders count and spend per currency, from the customer's orders as they stand."""
    counted = CustomerOrder.status.in_(domain.COUNTED_STATUSES)
    customer.orders_count = session.scalar(
        select(func.count()).select_from(CustomerOrder)
        .where(CustomerOrder.customer_id == customer.id, counted)) or 0
    spent = dict(session.execute(
        select(CustomerOrder.currency,
               func.sum(CustomerOrder.total - CustomerOrder.refunded))
        .where(CustomerOrder.customer_id == customer.id, counted,
               CustomerOrder.payment_status.in_(domain.SPENT_PAYMENT_STATUSES))
        .group_by(CustomerOrder.currency)).all())
    currencies = set(spent) | {row.currency for row in customer.spend}
    by_currency = {row.currency: row for row in customer.spend}
    for currency in currencies:
        amount = int(spent.get(currency, 0))
        if currency in by_currency:
            by_currency[currency].amount = amount
        else:
            customer.spend.append(CustomerSpend(currency=currency, amount=amount))


def own_record(session: Any, account_id: str, lock: bool = False) -> Customer:
    """The customer record linked to this account. An account whose email is still unproven
    while a guest record holds that email has none yet: it must not see the guest's data."""
    query = select(Customer).where(Customer.account_id == _uuid(account_id))
    customer = session.scalars(query.with_for_update() if lock else query).first()
    if customer is None:
        raise ServiceError(CustomersError.VERIFY_EMAIL_FIRST,
                           "Confirm your email address to use your address book.", 403)
    return customer


def addresses_of(session: Any, customer_id: uuid.UUID) -> list[Address]:
    return list(session.scalars(select(Address).where(Address.customer_id == customer_id)
                                .order_by(Address.created_at, Address.id)))


def own_address(session: Any, customer_id: uuid.UUID, address_id: str) -> Address:
    address = session.get(Address, _uuid(address_id, CustomersError.ADDRESS_NOT_FOUND))
    if address is None or address.customer_id != customer_id:
        raise ServiceError(CustomersError.ADDRESS_NOT_FOUND,
                           "No such address.", 404)  # never "not yours"
    return address


def _uuid(value: Any, code: str = CustomersError.CUSTOMER_NOT_FOUND) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(code, "Not found.", 404) from None


def customer_event(customer: Customer) -> dict[str, Any]:
    return {"customer_id": customer.id, "email": customer.email, "type": customer.type,
            "first_name": customer.first_name, "last_name": customer.last_name,
            "account_id": customer.account_id, "locale": customer.locale}


# Statements each batch of new orders runs, built once (a statement built per call is
# keyed for the compiled cache again every time: a third of a small select's cost).
_SPEND_CURRENCIES = select(SpendCurrency.__table__.c.currency)
_LOCK_CUSTOMERS = (
    select(Customer)
    .where(or_(Customer.id.in_(bindparam("ids", expanding=True)),
               Customer.email.in_(bindparam("emails", expanding=True))))
    .order_by(Customer.id).with_for_update())


class CustomerBook:
    """The customers a batch of orders touches, locked, found by id or by email."""

    def __init__(self, customers: list[Customer]) -> None:
        self.by_id: dict[Any, Customer] = {}
        self.by_email: dict[str, Customer] = {}
        for customer in customers:
            self.add(customer)

    @classmethod
    def locked(cls, session: Any, ids: set[Any], emails: set[str]) -> CustomerBook:
        # One statement; locked in id order, so two batches never wait on each other in a
        # circle.
        return cls(list(session.scalars(_LOCK_CUSTOMERS, {"ids": list(ids),
                                                          "emails": list(emails)})))

    def add(self, customer: Customer) -> None:
        self.by_id[customer.id] = customer
        self.by_email[customer.email] = customer

    def find(self, customer_id: Any, email: str) -> Customer | None:
        """The customer with this id, else the one with this (normalised) email."""
        return (customer_id and self.by_id.get(customer_id)) or self.by_email.get(email)


def by_email(session: Any, email: str) -> Customer | None:
    return session.scalars(
        select(Customer).where(Customer.email == domain.normalise_email(email))
        .with_for_update()
    ).first()


def create_registered(session: Any, account: dict[str, Any]) -> Customer:
    customer = Customer(id=account["account_id"], email=domain.normalise_email(
        account["email"]), orders_count=0)
    domain.link_account(customer, account)
    add_new(session, customer)
    emit(session, CUSTOMER_CREATED, customer_event(customer))
    return customer


def forget(session: Any, customer: Customer, deleted: bool) -> None:
    email, now = customer.email, utcnow()
    emit(session, CUSTOMER_ERASED, {
        "customer_id": customer.id, "account_id": customer.account_id,
        "email_sealed": seal(email), "erased_at": now, "deleted": deleted})
    session.execute(delete(CustomerCategory)
                    .where(CustomerCategory.customer_id == customer.id))
    session.execute(delete(Address).where(Address.customer_id == customer.id))
    domain.anonymise(customer, now)
    session.flush()
    forget_in_outbox(session, [email])
