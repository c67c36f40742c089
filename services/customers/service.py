"""Customers service: thin nameko entrypoints over the domain rules."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    String,
    Uuid,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from messaging.consumer import consume_event
from messaging.contracts import (
    ACCOUNT_APPROVED,
    ACCOUNT_DISABLED,
    ACCOUNT_EMAIL_VERIFIED,
    ACCOUNT_ENABLED,
    ACCOUNT_INVITED,
    ACCOUNT_REGISTERED,
    CATEGORY_DELETED,
    CUSTOMER_CATEGORIES_CHANGED,
    CUSTOMER_CREATED,
    CUSTOMER_ERASED,
    CUSTOMER_UPDATED,
    EMAIL_CHANGED,
    ORDER_ABANDONED,
    ORDER_CANCELED,
    ORDER_EMAIL_CORRECTED,
    ORDER_PLACED,
    ORDER_STATUS_CHANGED,
    PAYMENT_STATUS_CHANGED,
    load_payload,
)
from messaging.database import UtcDateTime
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.health import HealthEndpoints
from messaging.keys import seal
from messaging.logs import LogContext
from messaging.outbox import emit, forget_in_outbox
from messaging.rpc import rpc
from services.customers import domain
from services.customers.dependencies import customers_database
from services.customers.models import (
    Address,
    Category,
    Customer,
    CustomerCategory,
    CustomerOrder,
    CustomerSpend,
    SpendCurrency,
    name_sort_key,
    search_text,
)
from services.customers.schemas import (
    AddressInputSchema,
    AddressSchemaOut,
    CategoryInputSchema,
    CustomerCreateSchema,
    CustomerFilterSchema,
    CustomerListQuerySchema,
    CustomerSchema,
    CustomerUpdateSchema,
    InsightsQuerySchema,
    ProfileSchema,
    ProfileUpdateSchema,
)

log = logging.getLogger(__name__)

PROFILE, CUSTOMERS, LIST_QUERY = ProfileSchema(), CustomerSchema(many=True), \
    CustomerListQuerySchema()
FILTER_QUERY = CustomerFilterSchema()


class CustomersService(HealthEndpoints):
    name = "customers"

    db = customers_database()
    log_context = LogContext()

    @rpc
    def get_customer_by_email(self, email: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            customer = session.scalars(
                select(Customer).where(Customer.email == domain.normalise_email(email))
            ).first()
            if customer is None:
                raise ServiceError("customer_not_found", "No such customer.", 404)
            return CustomerSchema().dump(customer)

    @rpc
    def get_customer(self, customer_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            customer = _customer(session, customer_id)
            return CustomerSchema().dump(customer)

    @rpc
    def create_customer(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        """A customer the merchant adds by hand (no account; see identity.invite_account)."""
        data = load_or_raise(CustomerCreateSchema(), request)
        try:
            with self.db.transaction() as session:
                if self._by_email(session, data["email"]) is not None:
                    raise _customer_exists()
                customer = Customer(type="guest", orders_count=0, **data)
                _add_new(session, customer)
                emit(session, CUSTOMER_CREATED, _customer_event(customer))
                return CustomerSchema().dump(customer)
        except IntegrityError:
            raise _customer_exists() from None

    @rpc
    def update_customer(self, customer_id: str, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
        """The merchant edits a customer: names, phone, language, note, consent; the email
        only while there is no account (an account's email changes with proof, in identity)."""
        data = load_or_raise(CustomerUpdateSchema(), request)
        try:
            with self.db.transaction() as session:
                customer = _customer(session, customer_id, lock=True)
                if customer.erased_at is not None:
                    raise ServiceError("customer_erased",
                                       "This customer's data was erased.", 409)
                if "email" in data and data["email"] != customer.email:
                    if customer.account_id is not None:
                        raise ServiceError(
                            "email_belongs_to_account",
                            "This customer has an account: they change their email "
                            "themselves, with confirmation.", 409)
                    if self._by_email(session, data["email"]) is not None:
                        raise _customer_exists()
                if "accepts_marketing" in data:
                    domain.set_marketing_consent(customer, data.pop("accepts_marketing"),
                                                 utcnow())
                for field, value in data.items():
                    setattr(customer, field, value)
                session.flush()
                emit(session, CUSTOMER_UPDATED, _customer_event(customer))
                log.info("customer updated", extra={"customer_id": str(customer.id),
                                                    "actor": actor,
                                                    "fields": sorted(request)})
                return CustomerSchema().dump(customer)
        except IntegrityError:
            raise _customer_exists() from None

    @rpc
    def delete_customer(self, customer_id: str, actor: str) -> None:
        """Remove a customer who never ordered (a mistaken entry, a test account), with their
        account. One with orders is erased instead: the store keeps its order records."""
        with self.db.transaction() as session:
            customer = _customer(session, customer_id, lock=True)
            if session.scalar(select(func.count()).select_from(CustomerOrder)
                              .where(CustomerOrder.customer_id == customer.id)):
                raise ServiceError(
                    "customer_has_orders",
                    "This customer has orders, which the store must keep: erase their "
                    "personal data instead (POST /admin/customers/{id}/erase).", 409)
            self._forget(session, customer, deleted=True)
            session.execute(delete(Address).where(Address.customer_id == customer.id))
            session.execute(delete(CustomerSpend)
                            .where(CustomerSpend.customer_id == customer.id))
            session.delete(customer)
            log.info("customer deleted", extra={"customer_id": customer_id, "actor": actor})

    @rpc
    def erase_customer(self, customer_id: str, actor: str) -> dict[str, Any]:
        """Erase a person's data here and, through ``customer_erased``, in every service.
        The record stays, anonymous, so the store's figures still add up. Idempotent."""
        with self.db.transaction() as session:
            customer = _customer(session, customer_id, lock=True)
            if customer.erased_at is None:
                self._forget(session, customer, deleted=False)
                log.info("customer erased", extra={"customer_id": customer_id,
                                                   "actor": actor})
            return {"customer_id": str(customer.id), "erased_at": customer.erased_at.isoformat(),
                    "status": "erased"}

    def _forget(self, session: Any, customer: Customer, deleted: bool) -> None:
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

    @rpc
    def export_customer(self, customer_id: str) -> dict[str, Any]:
        """All this service holds about a customer (the gateway adds the other services')."""
        with self.db.transaction() as session:
            customer = _customer(session, customer_id)
            categories = session.scalars(
                select(Category.name).join(CustomerCategory)
                .where(CustomerCategory.customer_id == customer.id).order_by(Category.name)
            ).all()
            ledger = session.scalars(select(CustomerOrder)
                                     .where(CustomerOrder.customer_id == customer.id)
                                     .order_by(CustomerOrder.placed_at)).all()
            return {
                "customer": CustomerSchema().dump(customer),
                "addresses": AddressSchemaOut(many=True).dump(_addresses(session, customer.id)),
                "categories": list(categories),
                "order_ledger": [{"order_id": str(o.order_id), "placed_at": o.placed_at.isoformat(),
                            "status": o.status, "payment_status": o.payment_status,
                            "currency": o.currency, "total": o.total} for o in ledger],
            }

    # the customer's own profile (by account id) -----------------------------------------
    @rpc
    def get_profile(self, account_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return PROFILE.dump(_own_record(session, account_id))

    @rpc
    def update_profile(self, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
        data = load_or_raise(ProfileUpdateSchema(), request)
        with self.db.transaction() as session:
            customer = _own_record(session, account_id, lock=True)
            if "accepts_marketing" in data:
                domain.set_marketing_consent(customer, data.pop("accepts_marketing"), utcnow())
            for field, value in data.items():
                setattr(customer, field, value)
            emit(session, CUSTOMER_UPDATED, _customer_event(customer))
            return PROFILE.dump(customer)

    # the merchant's view -----------------------------------------------------------------
    @rpc
    def list_customers(self, query: dict[str, Any]) -> dict[str, Any]:
        """Filtered, sorted, keyset-paged (stable under inserts), with the total count."""
        data = load_or_raise(LIST_QUERY, query)
        column, descending = domain.SORTS[data["sort"]]
        filters = _customer_filters(data)
        with self.db.transaction() as session:
            statement, sort_key, tie = self._list_statement(session, column, data["currency"])
            statement = statement.where(*filters)
            total = None
            if data.get("cursor"):
                try:
                    value, last_id, total = domain.decode_cursor(data["cursor"], data["sort"])
                    after = tuple_(sort_key, tie)
                    bound = tuple_(literal(_cursor_value(column, value)),
                                   literal(uuid.UUID(last_id)))
                except ValueError:
                    raise ServiceError("validation_failed", "The cursor is not valid.", 422,
                                       errors={"cursor": ["Not a cursor of this list."]}
                                       ) from None
                statement = statement.where(after < bound if descending else after > bound)
            if total is None:  # counted once, on the first page; later pages carry it
                total = session.scalar(_count_statement(data, filters))
            order = (sort_key.desc(), tie.desc()) if descending else (sort_key.asc(),
                                                                      tie.asc())
            rows = session.execute(statement.order_by(*order).limit(data["limit"] + 1)).all()
            page = rows[:data["limit"]]
            next_cursor = None
            if len(rows) > data["limit"]:
                last = page[-1]
                next_cursor = domain.encode_cursor(data["sort"], last.sort_value,
                                                   str(last.Customer.id), total)
            return {"items": CUSTOMERS.dump([row.Customer for row in page]), "total": total,
                    "next_cursor": next_cursor}

    def _list_statement(self, session: Any, column: str, currency: str) -> tuple[Any, Any, Any]:
        """(statement, sort key, tie-breaker): each sort walks an index of its own (see
        models.py and migration customers_0007) rather than sorting every customer."""
        if column == "total_spent":
            if session.get(SpendCurrency, currency) is not None:
                # Every customer has a row in a known currency: walk the spend index.
                spend = aliased(CustomerSpend)
                return (select(Customer, spend.amount.label("sort_value"))
                        .join(spend, and_(spend.customer_id == Customer.id,
                                          spend.currency == currency)),
                        spend.amount, spend.customer_id)
            # A currency the store never sold in: everyone has spent 0 in it.
            return select(Customer, literal(0).label("sort_value")), literal(0), Customer.id
        sort_key = {
            "orders_count": Customer.orders_count,
            "last_order_at": func.coalesce(Customer.last_order_at, EPOCH),
            "created_at": Customer.created_at,
            "name": name_sort_key(),
        }[column]
        return select(Customer, sort_key.label("sort_value")), sort_key, Customer.id

    @rpc
    def insights(self, query: dict[str, Any]) -> dict[str, Any]:
        """Who buys, how often, from where, over a period (default: the last 90 days), from
        the ledger of orders that count."""
        data = load_or_raise(InsightsQuerySchema(), query)
        now = utcnow()
        end = _aware(data.get("to")) or now
        start = _aware(data.get("from_")) or end - timedelta(days=90)
        counted = CustomerOrder.status.in_(domain.COUNTED_STATUSES)
        in_period = and_(counted, CustomerOrder.placed_at >= start,
                         CustomerOrder.placed_at < end)
        paid = case((and_(CustomerOrder.payment_status.in_(domain.SPENT_PAYMENT_STATUSES),
                          CustomerOrder.currency == data["currency"]),
                     CustomerOrder.total - CustomerOrder.refunded), else_=0)
        per_customer = (select(CustomerOrder.customer_id, func.count().label("orders"),
                               func.coalesce(func.sum(paid), 0).label("spent"))
                        .where(in_period).group_by(CustomerOrder.customer_id).cte("per_customer"))

        def flag(condition: Any) -> Any:
            return case((condition, 1), else_=0)

        ordering = (select(per_customer.c.customer_id, per_customer.c.orders,
                           per_customer.c.spent, Customer.country,
                           flag(Customer.account_id.is_(None)).label("guest"),
                           flag(Customer.orders_count >= 2).label("repeat"),
                           flag(Customer.first_order_at >= start).label("new"))
                    .join(Customer, Customer.id == per_customer.c.customer_id).cte("ordering"))
        limit, no_text = data["limit"], cast(None, String)  # a typed NULL for UNION ALL
        o = ordering.c

        def ranked(kind: str, *order: Any) -> Any:
            top = (select(literal(kind).label("kind"), cast(o.customer_id, String).label("id"),
                          o.orders.label("a"), o.spent.label("b"), literal(0).label("c"),
                          literal(0).label("d"), literal(0).label("e"), no_text.label("country"))
                   .order_by(*order, o.customer_id).limit(limit).subquery())
            return select(*top.c)

        by_country = (select(literal("country"), no_text, func.count(), literal(0), literal(0),
                            literal(0), literal(0), o.country)
                      .where(o.country.is_not(None)).group_by(o.country)
                      .order_by(func.count().desc(), o.country).limit(limit).subquery())
        # The whole period folded in the database in one statement (the period's orders are
        # read once, into the "ordering" CTE): only the figures and the top rows travel.
        # Folding ~70k rows per customer here cost more than the query (1.5 s at 100k
        # customers and 1M orders).
        statement = union_all(
            select(literal("summary"), no_text, func.count(), func.coalesce(func.sum(o.orders), 0),
                   func.coalesce(func.sum(o.repeat), 0), func.coalesce(func.sum(o.new), 0),
                   func.coalesce(func.sum(o.guest), 0), no_text),
            ranked("spend", o.spent.desc(), o.orders.desc()),
            ranked("orders", o.orders.desc(), o.spent.desc()),
            select(*by_country.c))
        with self.db.transaction() as session:
            if session.get_bind().dialect.name == "postgresql":
                # The per-customer aggregate would spill to disk at the default 4 MB.
                session.execute(text("SET LOCAL work_mem = '32MB'"))
            rows = session.execute(statement).all()
            summary = next(r for r in rows if r[0] == "summary")
            wanted = {uuid.UUID(r[1]) for r in rows if r[0] in ("spend", "orders")}
            people = {c.id: c for c in session.scalars(
                select(Customer).where(Customer.id.in_(wanted)))} if wanted else {}

            def top(kind: str) -> list[dict[str, Any]]:
                found = [(people[uuid.UUID(r[1])], r) for r in rows if r[0] == kind]
                return [{"id": str(c.id), "email": c.email, "first_name": c.first_name,
                         "last_name": c.last_name, "orders": int(r[2]), "spent": int(r[3])}
                        for c, r in found]

            best_by_spend, best_by_orders = top("spend"), top("orders")
        customers, orders, repeat, new, guests = (int(v) for v in summary[2:7])
        countries = [(r[7], int(r[2])) for r in rows if r[0] == "country"]
        share = (lambda n: round(n / customers, 4)) if customers else (lambda n: 0.0)
        return {
            "period": {"from": start.isoformat(), "to": end.isoformat()},
            "currency": data["currency"], "customers_ordering": customers, "orders": orders,
            "best_by_spend": best_by_spend, "best_by_orders": best_by_orders,
            "repeat_customer_rate": share(repeat), "new_customers": new,
            "returning_customers": customers - new, "guest_share": share(guests),
            "registered_share": share(customers - guests) if customers else 0.0,
            "top_countries": [{"country": c, "customers": n} for c, n in countries],
        }

    @rpc
    def get_customer_detail(self, customer_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            customer = _customer(session, customer_id)
            categories = session.scalars(
                select(Category).join(CustomerCategory)
                .where(CustomerCategory.customer_id == customer.id).order_by(Category.name)
            ).all()
            return {
                **CustomerSchema().dump(customer),
                "addresses": AddressSchemaOut(many=True).dump(_addresses(session, customer.id)),
                "categories": [{"id": str(c.id), "name": c.name} for c in categories],
            }

    # categories ------------------------------------------------------------------------
    @rpc
    def list_categories(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            rows = session.execute(
                select(Category, func.count(CustomerCategory.customer_id).label("customers"))
                .outerjoin(CustomerCategory).group_by(Category.id).order_by(Category.name)
            ).all()
            return [{"id": str(c.id), "name": c.name, "customers": n} for c, n in rows]

    @rpc
    def create_category(self, request: dict[str, Any]) -> dict[str, Any]:
        data = load_or_raise(CategoryInputSchema(), request)
        try:
            with self.db.transaction() as session:
                category = Category(name=data["name"])
                session.add(category)
                session.flush()
                return {"id": str(category.id), "name": category.name, "customers": 0}
        except IntegrityError:
            raise _category_exists() from None

    @rpc
    def rename_category(self, category_id: str, request: dict[str, Any]) -> dict[str, Any]:
        data = load_or_raise(CategoryInputSchema(), request)
        try:
            with self.db.transaction() as session:
                category = _category(session, category_id)
                category.name = data["name"]
                session.flush()
                members = session.scalar(select(func.count()).select_from(CustomerCategory)
                                         .where(CustomerCategory.category_id == category.id))
                return {"id": str(category.id), "name": category.name, "customers": members}
        except IntegrityError:
            raise _category_exists() from None

    @rpc
    def get_category(self, category_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            category = _category(session, category_id)
            members = session.scalar(select(func.count()).select_from(CustomerCategory)
                                     .where(CustomerCategory.category_id == category.id))
            return {"id": str(category.id), "name": category.name, "customers": members}

    @rpc
    def delete_category(self, category_id: str, actor: str = "staff") -> None:
        """The category goes; its customers stay (only their membership is removed), and
        orders drops its price list."""
        with self.db.transaction() as session:
            category = _category(session, category_id)
            members = list(session.scalars(select(CustomerCategory.customer_id).where(
                CustomerCategory.category_id == category.id)))
            session.execute(delete(CustomerCategory)
                            .where(CustomerCategory.category_id == category.id))
            session.delete(category)
            emit(session, CATEGORY_DELETED, {"category_id": category.id, "actor": actor})
            session.flush()
            _announce_categories(session, members)

    @rpc
    def add_members_by_filter(self, category_id: str, query: dict[str, Any]) -> dict[str, int]:
        """Put every customer the list's filters match into a category, in one statement
        (customers already in it stay as they are). An empty filter means everyone."""
        data = load_or_raise(FILTER_QUERY, query)
        with self.db.transaction() as session:
            category = _category(session, category_id)
            already = exists().where(CustomerCategory.customer_id == Customer.id,
                                     CustomerCategory.category_id == category.id)
            matching = select(Customer.id, literal(category.id, Uuid()),
                              literal(utcnow(), UtcDateTime())).where(
                *_customer_filters(data), Customer.erased_at.is_(None), ~already)
            added_ids = list(session.scalars(insert(CustomerCategory).from_select(
                ["customer_id", "category_id", "added_at"], matching)
                .returning(CustomerCategory.customer_id)))
            added = len(added_ids)
            _announce_categories(session, added_ids)
            total = session.scalar(select(func.count()).select_from(CustomerCategory)
                                   .where(CustomerCategory.category_id == category.id))
            return {"added": added, "customers": total}

    @rpc
    def set_membership(self, category_id: str, customer_id: str, member: bool) -> None:
        """Idempotent: adding a member twice, or removing a non-member, changes nothing."""
        with self.db.transaction() as session:
            category = _category(session, category_id)
            customer = _customer(session, customer_id)
            existing = session.get(CustomerCategory, (customer.id, category.id))
            if member and existing is None:
                session.add(CustomerCategory(customer_id=customer.id, category_id=category.id))
            elif not member and existing is not None:
                session.delete(existing)
            else:
                return
            session.flush()
            _announce_categories(session, [customer.id])

    # the customer's own address book (by account id) -----------------------------------
    @rpc
    def list_addresses(self, account_id: str) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            customer = _own_record(session, account_id)
            return AddressSchemaOut(many=True).dump(_addresses(session, customer.id))

    @rpc
    def get_address(self, account_id: str, address_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            customer = _own_record(session, account_id)
            return AddressSchemaOut().dump(_own_address(session, customer.id, address_id))

    @rpc
    def add_address(self, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
        data = load_or_raise(AddressInputSchema(), request)
        with self.db.transaction() as session:
            customer = _own_record(session, account_id, lock=True)
            addresses = _addresses(session, customer.id)
            if len(addresses) >= domain.MAX_ADDRESSES:
                raise ServiceError("too_many_addresses",
                                   f"An address book holds {domain.MAX_ADDRESSES} addresses; "
                                   "delete one first.", 422)
            address = Address(customer_id=customer.id, default_shipping=False,
                              default_billing=False,
                              **{f: data[f] for f in domain.ADDRESS_FIELDS})
            session.add(address)
            addresses.append(address)
            domain.apply_defaults(addresses, address, data["default_shipping"],
                                  data["default_billing"])
            session.flush()
            return AddressSchemaOut().dump(address)

    @rpc
    def update_address(self, account_id: str, address_id: str, request: dict[str, Any]
                       ) -> dict[str, Any]:
        data = load_or_raise(AddressInputSchema(partial=True), request)
        with self.db.transaction() as session:
            customer = _own_record(session, account_id, lock=True)
            address = _own_address(session, customer.id, address_id)
            for field in domain.ADDRESS_FIELDS:
                if field in data:
                    setattr(address, field, data[field])
            domain.apply_defaults(_addresses(session, customer.id), address,
                                  data.get("default_shipping"), data.get("default_billing"))
            session.flush()
            return AddressSchemaOut().dump(address)

    @rpc
    def delete_address(self, account_id: str, address_id: str) -> None:
        with self.db.transaction() as session:
            customer = _own_record(session, account_id, lock=True)
            session.delete(_own_address(session, customer.id, address_id))

    @rpc
    def checkout_prefill(self, account_id: str) -> dict[str, Any]:
        """What a checkout form starts with: names, phone, default addresses."""
        with self.db.transaction() as session:
            customer = _own_record(session, account_id)
            addresses = _addresses(session, customer.id)
            shipping = next((a for a in addresses if a.default_shipping), None)
            billing = next((a for a in addresses if a.default_billing), None)
            return {
                "first_name": customer.first_name, "last_name": customer.last_name,
                "phone": customer.phone,
                "shipping_address": AddressSchemaOut().dump(shipping) if shipping else None,
                "billing_address": AddressSchemaOut().dump(billing) if billing else None,
            }

    @consume_event("orders", ORDER_PLACED)
    def handle_order_placed(self, envelope: Envelope) -> None:
        order = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            email = domain.normalise_email(order["email"])
            # An order with a customer id is that customer's, whatever email it carries (an
            # account's order made before an email change, say); the email finds guests.
            customer = session.get(Customer, order["customer_id"], with_for_update=True) \
                if order["customer_id"] else None
            if customer is None:
                customer = self._by_email(session, email)
            _know_currency(session, order["currency"])
            created = customer is None
            if created:
                customer = _new_guest(session, email, order["customer_id"])
            domain.apply_order_placed(customer, order)
            session.flush()
            if session.get(CustomerOrder, order["order_id"]) is None:
                session.add(CustomerOrder(
                    order_id=order["order_id"], customer_id=customer.id,
                    currency=order["currency"], total=order["total"], status=order["status"],
                    payment_status=order["payment_status"], placed_at=order["placed_at"]))
                session.flush()
            _recompute_figures(session, customer)
            if created:
                emit(session, CUSTOMER_CREATED, _customer_event(customer))

    @consume_event("orders", ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, envelope: Envelope) -> None:
        self._order_changed(envelope, "status")

    @consume_event("orders", ORDER_CANCELED)
    def handle_order_canceled(self, envelope: Envelope) -> None:
        self._order_changed(envelope, "status")

    @consume_event("orders", ORDER_ABANDONED)
    def handle_order_abandoned(self, envelope: Envelope) -> None:
        self._order_changed(envelope, "status")

    @consume_event("orders", PAYMENT_STATUS_CHANGED)
    def handle_payment_status_changed(self, envelope: Envelope) -> None:
        self._order_changed(envelope, "payment_status")

    def _order_changed(self, envelope: Envelope, field: str) -> None:
        change = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            row = session.get(CustomerOrder, change["order_id"], with_for_update=True)
            if row is None:
                # order_placed has not been handled yet: try again later (retry queue).
                raise RuntimeError("order not known yet; retrying")
            if field == "payment_status":
                domain.apply_payment_change(row, change["to"], change.get("refunded_total"))
            else:
                setattr(row, field, change["to"])
            customer = session.get(Customer, row.customer_id, with_for_update=True)
            if field == "status":
                newest = session.scalar(select(func.max(CustomerOrder.placed_at))
                                        .where(CustomerOrder.customer_id == customer.id))
                if row.placed_at >= newest:
                    customer.last_order_status = change["to"]
            session.flush()
            _recompute_figures(session, customer)

    @consume_event("orders", ORDER_EMAIL_CORRECTED)
    def handle_order_email_corrected(self, envelope: Envelope) -> None:
        """A guest order moved to another email: its figures move to that customer."""
        change = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            row = session.get(CustomerOrder, change["order_id"], with_for_update=True)
            if row is None:
                raise RuntimeError("order not known yet; retrying")
            before = session.get(Customer, row.customer_id, with_for_update=True)
            after = self._by_email(session, change["email"])
            if after is None:
                after = _new_guest(session, domain.normalise_email(change["email"]))
                emit(session, CUSTOMER_CREATED, _customer_event(after))
            if after.id == row.customer_id:
                return
            row.customer_id = after.id
            session.flush()
            for customer in (before, after):
                if customer is not None:
                    _recompute_figures(session, customer)

    @consume_event("identity", ACCOUNT_REGISTERED)
    def handle_account_registered(self, envelope: Envelope) -> None:
        """A new email gets its registered customer record at once. An email that already has
        a guest record is linked only once the account proves the email (see below): linking
        on an unverified claim would hand a stranger someone's order history."""
        account = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            customer = self._by_email(session, account["email"])
            if customer is None:
                customer = self._create_registered(session, account)
            if customer.account_id == account["account_id"]:
                domain.mirror_account_status(customer, account["status"],
                                             _occurred(envelope))

    @consume_event("identity", ACCOUNT_INVITED)
    def handle_account_invited(self, envelope: Envelope) -> None:
        """Same rule as registration: a new email gets its record, a guest's waits for proof."""
        self.handle_account_registered(envelope)

    @consume_event("identity", ACCOUNT_EMAIL_VERIFIED)
    def handle_account_email_verified(self, envelope: Envelope) -> None:
        account = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            customer = self._by_email(session, account["email"])
            if customer is None:
                customer = self._create_registered(session, account)
            elif customer.account_id is None:
                domain.link_account(customer, account)
                emit(session, CUSTOMER_UPDATED, _customer_event(customer))
                _announce_categories(session, [customer.id], only_members=True)
            domain.mirror_account_status(customer, account["status"], _occurred(envelope))

    @consume_event("identity", ACCOUNT_APPROVED)
    def handle_account_approved(self, envelope: Envelope) -> None:
        self._account_status_changed(envelope)

    @consume_event("identity", ACCOUNT_DISABLED)
    def handle_account_disabled(self, envelope: Envelope) -> None:
        self._account_status_changed(envelope)

    @consume_event("identity", ACCOUNT_ENABLED)
    def handle_account_enabled(self, envelope: Envelope) -> None:
        self._account_status_changed(envelope)

    def _account_status_changed(self, envelope: Envelope) -> None:
        account = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            customer = _linked(session, account["account_id"])
            if customer is not None:
                domain.mirror_account_status(customer, account["status"],
                                             _occurred(envelope))

    @consume_event("identity", EMAIL_CHANGED)
    def handle_email_changed(self, envelope: Envelope) -> None:
        account = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            customer = _linked(session, account["account_id"])
            new_email = domain.normalise_email(account["email"])
            if customer is None or customer.email == new_email:
                return
            other = self._by_email(session, new_email)
            if other is not None:
                # A guest record already holds that email: merging two histories is a
                # merchant's decision, not an event handler's. Keep both; say so.
                log.warning("email change collides with another customer record",
                            extra={"customer_id": str(customer.id)})
                return
            customer.email = new_email
            emit(session, CUSTOMER_UPDATED, _customer_event(customer))

    def _by_email(self, session: Any, email: str) -> Customer | None:
        return session.scalars(
            select(Customer).where(Customer.email == domain.normalise_email(email))
            .with_for_update()
        ).first()

    def _create_registered(self, session: Any, account: dict[str, Any]) -> Customer:
        customer = Customer(id=account["account_id"], email=domain.normalise_email(
            account["email"]), orders_count=0)
        domain.link_account(customer, account)
        _add_new(session, customer)
        emit(session, CUSTOMER_CREATED, _customer_event(customer))
        return customer


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME_SORTS = {"last_order_at", "created_at"}


def _cursor_value(column: str, value: Any) -> Any:
    if column in _DATETIME_SORTS:
        return datetime.fromisoformat(str(value))
    if column in ("total_spent", "orders_count"):
        return int(value)
    return str(value)


def _count_statement(data: dict[str, Any], filters: list[Any]) -> Any:
    if set(data) - {"sort", "limit", "currency", "cursor"} == {"category"}:
        # A category alone: count its members (each row is a live customer) rather than
        # joining every customer to them.
        return select(func.count()).select_from(CustomerCategory).where(
            CustomerCategory.category_id == data["category"])
    return select(func.count()).select_from(Customer).where(*filters)


def _customer_filters(data: dict[str, Any]) -> list[Any]:
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


def _linked(session: Any, account_id: Any) -> Customer | None:
    """The customer record linked to an account, locked (none while the email is unproven
    and a guest record holds it)."""
    return session.scalars(select(Customer).where(Customer.account_id == account_id)
                           .with_for_update()).first()


def _occurred(envelope: Envelope) -> datetime:
    return datetime.fromisoformat(envelope.occurred_at)


def _customer(session: Any, customer_id: str, lock: bool = False) -> Customer:
    customer = session.get(Customer, _uuid(customer_id), with_for_update=lock)
    if customer is None:
        raise ServiceError("customer_not_found", "No such customer.", 404)
    return customer


def _customer_exists() -> ServiceError:
    return ServiceError("customer_exists", "A customer with this email exists.", 409)


def _announce_categories(session: Any, customer_ids: Any, only_members: bool = False) -> None:
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


def _category(session: Any, category_id: str) -> Category:
    category = session.get(Category, _uuid(category_id, "category_not_found"))
    if category is None:
        raise ServiceError("category_not_found", "No such category.", 404)
    return category


def _category_exists() -> ServiceError:
    return ServiceError("category_exists", "A category with this name exists.", 409)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _new_guest(session: Any, email: str, customer_id: Any = None) -> Customer:
    """A guest record for an email no customer has yet (with the account's id when an
    account's order comes before the account's own event)."""
    customer = Customer(email=email, type="guest", orders_count=0)
    if customer_id:
        customer.id = customer_id
    _add_new(session, customer)
    return customer


def _add_new(session: Any, customer: Customer) -> None:
    """A new customer, with a zero spend row in every currency the store sells in."""
    customer.spend = [CustomerSpend(currency=currency, amount=0)
                      for currency in session.scalars(select(SpendCurrency.currency))]
    session.add(customer)
    session.flush()


def _know_currency(session: Any, currency: str) -> None:
    """The first order in a new currency (once in a store's life, usually): give every
    customer a zero row in it, so sorting by spend in it can walk the spend index."""
    if session.get(SpendCurrency, currency) is not None:
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


def _recompute_figures(session: Any, customer: Customer) -> None:
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


def _own_record(session: Any, account_id: str, lock: bool = False) -> Customer:
    """The customer record linked to this account. An account whose email is still unproven
    while a guest record holds that email has none yet: it must not see the guest's data."""
    query = select(Customer).where(Customer.account_id == _uuid(account_id))
    customer = session.scalars(query.with_for_update() if lock else query).first()
    if customer is None:
        raise ServiceError("verify_email_first",
                           "Confirm your email address to use your address book.", 403)
    return customer


def _addresses(session: Any, customer_id: uuid.UUID) -> list[Address]:
    return list(session.scalars(select(Address).where(Address.customer_id == customer_id)
                                .order_by(Address.created_at, Address.id)))


def _own_address(session: Any, customer_id: uuid.UUID, address_id: str) -> Address:
    address = session.get(Address, _uuid(address_id, "address_not_found"))
    if address is None or address.customer_id != customer_id:
        raise ServiceError("address_not_found", "No such address.", 404)  # never "not yours"
    return address


def _uuid(value: Any, code: str = "customer_not_found") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(code, "Not found.", 404) from None


def _customer_event(customer: Customer) -> dict[str, Any]:
    return {"customer_id": customer.id, "email": customer.email, "type": customer.type,
            "first_name": customer.first_name, "last_name": customer.last_name,
            "account_id": customer.account_id, "locale": customer.locale}
