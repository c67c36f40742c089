"""Orders service: thin nameko entrypoints over the domain rules."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nameko.timer import timer
from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from messaging.consumer import consume_event
from messaging.contracts import (
    ACCOUNT_EMAIL_VERIFIED,
    CATEGORY_DELETED,
    CUSTOMER_CATEGORIES_CHANGED,
    CUSTOMER_EMAILED_CHANGES,
    CUSTOMER_ERASED,
    EMAIL_CHANGED,
    ORDER_EMAIL_CORRECTED,
    ORDER_PLACED,
    is_erased_email,
    load_payload,
)
from messaging.database import locked_row
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.health import HealthEndpoints
from messaging.keys import hash_token, new_token, seal, token_matches, unseal
from messaging.logs import LogContext, mask_email
from messaging.outbox import emit, forget_in_outbox
from messaging.paging import after_marker, page_marker
from messaging.rpc import rpc
from services.orders import domain, payments, pricing
from services.orders.dependencies import PaymentProviderDependency, orders_database
from services.orders.models import (
    BuyLink,
    Cart,
    CartLine,
    CheckoutLimits,
    Counter,
    CustomerMembership,
    HoldWindow,
    IdempotencyKey,
    Order,
    OrderHistory,
    OrderLine,
    Product,
)
from services.orders.schemas import (
    MAX_QUANTITY,
    AdminOrderQuerySchema,
    AdminOrderSchema,
    AdminOrderSummarySchema,
    BuyLinkInputSchema,
    BuyLinkSchema,
    BuyLinkUpdateSchema,
    CartReplaceSchema,
    CategoryPriceListSchema,
    CategoryPricingSchema,
    CheckoutLimitsSchema,
    FulfillmentChangeSchema,
    HoldWindowsSchema,
    LineRequestSchema,
    ManualOrderSchema,
    NoteSchema,
    OrderEmailSchema,
    OrderPageSchema,
    OrderSchema,
    PaymentChangeSchema,
    PlaceOrderSchema,
    ProductInputSchema,
    ProductSchema,
    ProductUpdateSchema,
    RefundRequestSchema,
    SavedCartSchema,
    StartPaymentSchema,
    StatusChangeSchema,
)
from services.orders.transitions import change_state, recovery_token

log = logging.getLogger(__name__)

STOREFRONT_URL = os.environ.get("STOREFRONT_URL", "http://127.0.0.1:8000")
ABANDON_SWEEP_SECONDS = float(os.environ.get("ABANDON_SWEEP_SECONDS", "60"))
ABANDON_BATCH = 200  # orders per sweep transaction; the next sweep takes the rest

# Schemas are built once: building one per call (field deep copies) showed in profiles.
ORDER, ORDERS, PRODUCTS = OrderSchema(), OrderSchema(many=True), ProductSchema(many=True)
PLACE_ORDER, ORDER_PAGE = PlaceOrderSchema(), OrderPageSchema()
ADMIN_ORDER, ADMIN_ORDERS = AdminOrderSchema(), AdminOrderSchema(many=True)
ADMIN_SUMMARIES = AdminOrderSummarySchema(many=True)
BUY_LINK, SAVED_CART = BuyLinkSchema(), SavedCartSchema()
START_PAYMENT = StartPaymentSchema()
CHANGE_SCHEMAS = {"status": StatusChangeSchema(), "payment_status": PaymentChangeSchema(),
                  "fulfillment_status": FulfillmentChangeSchema()}


class OrdersService(HealthEndpoints):
    name = "orders"

    db = orders_database()
    payments = PaymentProviderDependency()
    log_context = LogContext()

    @rpc
    def list_products(self, customer_id: str | None = None, prices_visible: bool = True
                      ) -> list[dict[str, Any]]:
        """The active catalogue at the caller's prices (a customer's categories may change
        them; ``prices_visible`` false: no prices at all, as the store setting asks)."""
        with self.db.transaction() as session:
            products = session.scalars(
                select(Product).where(Product.active.is_(True)).order_by(Product.sku)
            ).all()
            terms = pricing.terms_for(session, customer_id) if prices_visible else []
            return [{**view, **pricing.price_view(product, terms, prices_visible)}
                    for view, product in zip(PRODUCTS.dump(products), products, strict=True)]

    @rpc
    def list_all_products(self) -> list[dict[str, Any]]:
        """The whole catalogue for the merchant, inactive products included."""
        with self.db.transaction() as session:
            return PRODUCTS.dump(session.scalars(select(Product).order_by(Product.sku)).all())

    @rpc
    def create_product(self, request: dict[str, Any]) -> dict[str, Any]:
        data = load_or_raise(ProductInputSchema(), request)
        try:
            with self.db.transaction() as session:
                product = Product(**data)
                session.add(product)
                session.flush()
                return ProductSchema().dump(product)
        except IntegrityError:
            raise ServiceError("product_exists", "A product with this SKU exists.",
                               409) from None

    @rpc
    def update_product(self, sku: str, request: dict[str, Any]) -> dict[str, Any]:
        """Change a product; stock is set as counted (null: unlimited). Orders already
        placed keep the price they were placed at."""
        data = load_or_raise(ProductUpdateSchema(partial=True), request)
        with self.db.transaction() as session:
            product = session.get(Product, str(sku)[:64], with_for_update=True)
            if product is None:
                raise ServiceError("product_not_found", "No such product.", 404)
            for field, value in data.items():
                setattr(product, field, value)
            session.flush()
            return ProductSchema().dump(product)

    @rpc
    def get_order(self, order_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id))
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            return ORDER.dump(order)

    @rpc
    def get_guest_order(self, order_id: str, token: str) -> dict[str, Any]:
        """A guest's view of their order, opened with the token from the confirmation email.
        A wrong token and a missing order look the same."""
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id))
            if order is None or not token_matches(str(token), order.access_token_hash):
                raise ServiceError("order_not_found", "No such order.", 404)
            return ORDER.dump(order)

    @rpc
    def open_account_offer(self, order_id: str, token: str) -> dict[str, Any]:
        """The guest order whose confirmation offered an account, if the offer still stands
        (made at checkout, not expired, not taken): what identity needs to create it."""
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id))
            if order is None or not token_matches(str(token), order.access_token_hash):
                raise ServiceError("order_not_found", "No such order.", 404)
            if order.account_offer_expires_at is None:
                raise ServiceError("account_offer_unavailable",
                                   "This order did not offer an account: register instead.", 403)
            if order.account_offer_used_at is not None \
                    or order.account_offer_expires_at <= utcnow():
                raise ServiceError("account_offer_expired",
                                   "This account offer was taken or has expired: register or "
                                   "log in instead.", 410)
            return ORDER.dump(order)

    @rpc
    def close_account_offer(self, order_id: str) -> None:
        """The offer was taken: it cannot be taken again."""
        with self.db.transaction() as session:
            session.execute(update(Order).where(Order.id == _uuid(order_id),
                                                Order.account_offer_used_at.is_(None))
                            .values(account_offer_used_at=utcnow()))

    @rpc
    def list_customer_orders(self, customer_id: str, page: dict[str, Any]) -> dict[str, Any]:
        """A customer's orders, newest first; ``before`` (the last placed_at seen) pages on."""
        query = load_or_raise(ORDER_PAGE, page)
        with self.db.transaction() as session:
            statement = (select(Order).where(Order.customer_id == _uuid(customer_id))
                         .order_by(Order.placed_at.desc(), Order.id.desc())
                         .options(selectinload(Order.lines))  # one query for every line
                         .limit(query["limit"] + 1))
            if query["before"]:
                statement = statement.where(Order.placed_at < query["before"])
            orders = session.scalars(statement).all()
            items = ORDERS.dump(orders[:query["limit"]])
        more = len(orders) > query["limit"]
        return {"items": items, "next_before": items[-1]["placed_at"] if more else None}

    @rpc
    def recent_orders_of(self, account_id: str | None, email: str, limit: int = 10
                         ) -> list[dict[str, Any]]:
        """For the merchant's customer page: the account's orders and the email's guest
        orders, newest first."""
        with self.db.transaction() as session:
            orders = session.scalars(select(Order).where(_orders_of(account_id, email))
                                     .order_by(Order.placed_at.desc())
                                     .options(selectinload(Order.lines))
                                     .limit(max(1, min(int(limit), 50)))).all()
            return ORDERS.dump(orders)

    @rpc
    def get_customer_order(self, customer_id: str, order_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id))
            if order is None or order.customer_id != _uuid(customer_id):
                raise ServiceError("order_not_found", "No such order.", 404)  # not "forbidden"
            return ORDER.dump(order)

    # the merchant's actions ------------------------------------------------------------
    @rpc
    def change_order(self, order_id: str, field: str, request: dict[str, Any], actor: str
                     ) -> dict[str, Any]:
        """Move one of the order's three states (status, payment_status, fulfillment_status)
        along its machine. Illegal: 409 naming the allowed states; the same state: no-op.
        Each change is a history row and an event, in the same transaction."""
        data = load_or_raise(CHANGE_SCHEMAS[field], request)
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id), with_for_update=True)
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            if field == "payment_status" and order.payment_method not in \
                    domain.MANUAL_PAYMENT_METHODS:
                raise ServiceError("payment_not_manual",
                                   f"{order.payment_method} payments are not changed by hand.",
                                   409)
            if field == "payment_status" and data[field] in domain.SET_BY_REFUND:
                if data[field] == "partially_refunded":
                    raise ServiceError("refund_amount_required", "A partial refund has an "
                                       "amount: use POST /admin/orders/{id}/refund.", 422)
                # "Refunded" by hand: everything left, recorded as a refund (its amount kept).
                if order.payment_status != "refunded":
                    payments.refund_order(session, self.payments, order, None, data["comment"],
                                          data["notify_customer"], actor)
                session.flush()
                return ADMIN_ORDER.dump(order)
            if field == "fulfillment_status" and domain.is_digital_only(order.lines):
                raise ServiceError("nothing_to_ship", "This order is digital only.", 409)
            if data["notify_customer"] and (field, data[field]) not in CUSTOMER_EMAILED_CHANGES:
                raise ServiceError(
                    "nothing_to_notify", "No email tells a customer about this change.", 422,
                    errors={"notify_customer": [
                        "Only these changes are emailed: " + ", ".join(
                            f"{f} {s}" for f, s in sorted(CUSTOMER_EMAILED_CHANGES))]})
            implied = domain.follow_ups(field, data[field], order)
            if (field, data[field]) == ("status", "canceled") and \
                    domain.check_transition(field, order.status, "canceled"):
                missing = domain.refund_decision_problem(order, data.get("payment"),
                                                         data["comment"])
                if missing:
                    raise ServiceError("refund_decision_required",
                                       "Canceling a paid order: refund it or keep it.", 422,
                                       errors=missing)
            refund = (field, data[field]) == ("status", "canceled") and \
                data.get("payment") == "refund" and \
                order.payment_status in domain.REFUNDABLE_PAYMENT
            change_state(session, order, field, data[field], actor, data["comment"],
                         data["notify_customer"], data)
            for implied_field, state in implied:
                if domain.MACHINES[implied_field][getattr(order, implied_field)] >= {state}:
                    change_state(session, order, implied_field, state, "system",
                                 f"follows {field} {data[field]}", False, {})
            if refund:  # through the provider for a card payment; the cancel email says it
                payments.refund_order(session, self.payments, order, None,
                                      f"follows {field} {data[field]}", False, actor)
            session.flush()
            return ADMIN_ORDER.dump(order)

    @rpc
    def correct_order_email(self, order_id: str, request: dict[str, Any], actor: str
                            ) -> dict[str, Any]:
        """A guest order's email, corrected by the merchant (a typo at checkout): recorded in
        the history, and later emails go to the new address. An account's orders follow the
        account's email instead (changed by the customer, with confirmation)."""
        data = load_or_raise(OrderEmailSchema(), request)
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id), with_for_update=True)
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            if order.customer_id is not None:
                raise ServiceError("account_order", "An account's orders follow the account's "
                                   "email: the customer changes it.", 409)
            if is_erased_email(order.email):
                raise ServiceError("customer_erased", "This customer's data was erased.", 409)
            old_email = order.email
            if data["email"] != old_email:
                order.email = data["email"]
                order.history.append(OrderHistory(
                    at=utcnow(), actor=actor, field="email", from_value=old_email,
                    to_value=data["email"], comment=data["comment"], notify_customer=False))
                emit(session, ORDER_EMAIL_CORRECTED, {
                    "order_id": order.id, "number": f"#{order.number}", "old_email": old_email,
                    "email": data["email"], "actor": actor})
            session.flush()
            return ADMIN_ORDER.dump(order)

    @rpc
    def add_note(self, order_id: str, request: dict[str, Any], actor: str) -> dict[str, Any]:
        data = load_or_raise(NoteSchema(), request)
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id), with_for_update=True)
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            order.history.append(OrderHistory(at=utcnow(), actor=actor, field="note",
                                              comment=data["comment"], notify_customer=False))
            session.flush()
            return ADMIN_ORDER.dump(order)

    # category prices --------------------------------------------------------------------
    @rpc
    def get_category_pricing(self, category_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return pricing.get_pricing(session, _uuid(category_id, CATEGORY_NOT_FOUND))

    @rpc
    def set_category_pricing(self, category_id: str, request: dict[str, Any], actor: str
                             ) -> dict[str, Any]:
        data = load_or_raise(CategoryPricingSchema(), request)
        with self.db.transaction() as session:
            result = pricing.set_pricing(session, _uuid(category_id, CATEGORY_NOT_FOUND),
                                         data, actor)
        log.info("category pricing set", extra={"actor": actor, **result})
        return result

    @rpc
    def get_category_prices(self, category_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return {"prices": pricing.get_prices(session,
                                                 _uuid(category_id, CATEGORY_NOT_FOUND))}

    @rpc
    def set_category_prices(self, category_id: str, request: dict[str, Any], actor: str
                            ) -> dict[str, Any]:
        data = load_or_raise(CategoryPriceListSchema(), request)
        with self.db.transaction() as session:
            prices = pricing.replace_prices(session, _uuid(category_id, CATEGORY_NOT_FOUND),
                                            data["prices"])
        log.info("category prices set", extra={"actor": actor, "skus": len(prices)})
        return {"prices": prices}

    @consume_event("customers", CUSTOMER_CATEGORIES_CHANGED)
    def handle_customer_categories_changed(self, envelope: Envelope) -> None:
        """Orders' copy of a customer's categories: the newest version wins, so a redelivered
        or overtaken event leaves it right."""
        change = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            pricing.apply_membership(session, change["account_id"], change["category_ids"],
                                     change["version"])

    @consume_event("customers", CATEGORY_DELETED)
    def handle_category_deleted(self, envelope: Envelope) -> None:
        deleted = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            pricing.forget_category(session, deleted["category_id"])

    # payments ---------------------------------------------------------------------------
    @rpc
    def start_payment(self, order_id: str, customer_id: str | None, token: str | None,
                      just_placed: bool = False) -> dict[str, Any]:
        """The page where the order's customer (or whoever holds the guest's order token)
        pays it: one open payment per order; a paid order answers 409. ``just_placed``: the
        gateway's checkout, for the order it has just placed for this caller."""
        with self.db.transaction() as session:
            if just_placed:
                order = session.get(Order, _uuid(order_id), with_for_update=True)
                if order is None:
                    raise ServiceError("order_not_found", "No such order.", 404)
            else:
                order = payments.order_for_payer(session, _uuid(order_id), customer_id, token)
            if self.payments is None:
                raise ServiceError("card_payments_unavailable",
                                   "This store takes no card payments.", 409)
            return START_PAYMENT.dump(payments.start_payment(session, self.payments, order,
                                                             STOREFRONT_URL))

    @rpc
    def receive_payment_event(self, provider: str, body: str, signature: str | None
                              ) -> dict[str, Any]:
        """A provider's webhook: 400 unless its signature is right, then handled once."""
        if self.payments is None or provider != self.payments.name:
            raise ServiceError("unknown_provider", f"No {provider} payments here.", 404)
        event = self.payments.parse_event(body.encode("utf-8"), signature)
        with self.db.transaction() as session:
            return payments.receive_event(session, self.payments, event)

    @rpc
    def refund_order(self, order_id: str, request: dict[str, Any], actor: str
                     ) -> dict[str, Any]:
        data = load_or_raise(RefundRequestSchema(), request)
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id), with_for_update=True)
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            payments.refund_order(session, self.payments, order, data["amount"],
                                  data["comment"], data["notify_customer"], actor)
            session.flush()
            return ADMIN_ORDER.dump(order)

    @rpc
    def test_payment_page(self, session_id: str) -> dict[str, Any]:
        """What the test provider's page shows (404 unless the test provider is on)."""
        if self.payments is None or self.payments.name != "test":
            raise ServiceError("payment_session_not_found", "No such payment page.", 404)
        with self.db.transaction() as session:
            pay_session, order = payments.test_page(session, session_id)
            return {"number": f"#{order.number}", "amount": pay_session.amount,
                    "currency": pay_session.currency, "status": pay_session.status,
                    "expired": pay_session.expires_at <= utcnow(), "order_id": order.id,
                    "locale": order.locale}

    @rpc
    def test_payment_outcome(self, session_id: str, outcome: str) -> dict[str, Any]:
        """The signed event the test page sends to the webhook route, as a real provider
        would: Pay (payment.succeeded) or Decline (payment.declined)."""
        if self.payments is None or self.payments.name != "test" \
                or outcome not in ("pay", "decline"):
            raise ServiceError("payment_session_not_found", "No such payment page.", 404)
        with self.db.transaction() as session:
            pay_session, order = payments.test_page(session, session_id)
            if pay_session.status != "open" or pay_session.expires_at <= utcnow():
                raise ServiceError("payment_session_closed", "This payment page is closed.",
                                   409)
            data = {"session": session_id, "payment": f"pay_test_{pay_session.id.hex[:20]}",
                    "amount": pay_session.amount, "currency": pay_session.currency}
            order_id = order.id
        body, signature = self.payments.signed_event(
            "payment.succeeded" if outcome == "pay" else "payment.declined", data)
        return {"body": body, "signature": signature,
                "header": self.payments.signature_header,
                "return_url": f"{STOREFRONT_URL.rstrip('/')}/orders/{order_id}?payment="
                              + ("done" if outcome == "pay" else "declined")}

    @rpc
    def get_admin_order(self, order_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id))
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            return ADMIN_ORDER.dump(order)

    @rpc
    def list_admin_orders(self, query: dict[str, Any]) -> dict[str, Any]:
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
        with self.db.transaction() as session:
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

    @rpc
    def order_stats(self, first_day: str, last_day: str, currency: str) -> dict[str, Any]:
        """Orders placed, orders paid and paid revenue per day (UTC), for the admin's charts.
        Revenue counts orders whose payment is ``paid`` now: refunds and voids drop out."""
        try:
            first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
        except (TypeError, ValueError):
            raise ServiceError("validation_failed", "Dates must look like 2026-01-31.",
                               422) from None
        if last < first or (last - first).days >= domain.STATS_MAX_DAYS:
            raise ServiceError("validation_failed",
                               f"The range must run forwards and span at most "
                               f"{domain.STATS_MAX_DAYS} days.", 422)
        start = datetime.combine(first, datetime.min.time(), UTC)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
        paid = Order.payment_status == "paid"
        with self.db.transaction() as session:
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

    @rpc
    def export_page(self, placed_from: str, placed_to: str, after: str | None,
                    limit: int = 500, status: str | None = None) -> dict[str, Any]:
        """One page of orders placed in [from, to), oldest first, for the CSV export: a row
        per order line, the order's fields repeated."""
        try:
            start, end = datetime.fromisoformat(placed_from), datetime.fromisoformat(placed_to)
        except ValueError:
            raise ServiceError("validation_failed", "Not a valid date range.", 422) from None
        statement = select(Order).where(Order.placed_at >= start, Order.placed_at < end)
        if status:
            statement = statement.where(Order.status == status)
        if after:
            statement = statement.where(after_marker(Order.placed_at, Order.id, after, "after",
                                                     descending=False))
        with self.db.transaction() as session:
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

    # abandonment and recovery -----------------------------------------------------------
    @timer(interval=ABANDON_SWEEP_SECONDS)
    def abandon_expired_orders(self) -> int:
        """Unpaid orders past their payment method's hold window become abandoned, their
        stock released. Rows are claimed with SKIP LOCKED, so replicas sweeping at the same
        time each take different orders, and the state machine makes a second pass a no-op."""
        now = utcnow()
        with self.db.transaction() as session:
            windows = _hold_windows(session)
            expired = or_(*(and_(Order.payment_method == method,
                                 Order.placed_at < now - timedelta(minutes=minutes))
                            for method, minutes in windows.items()))
            orders = session.scalars(
                select(Order).where(Order.status == "pending_payment", expired)
                .order_by(Order.placed_at).limit(ABANDON_BATCH)
                .with_for_update(skip_locked=True)).all()
            for order in orders:
                change_state(session, order, "status", "abandoned", "system",
                             f"Unpaid after {windows[order.payment_method]} minutes", True, {})
        if orders:
            log.info("orders abandoned", extra={"count": len(orders)})
        return len(orders)

    @rpc
    def get_checkout_limits(self) -> dict[str, int]:
        with self.db.transaction() as session:
            return _checkout_limits(session)

    @rpc
    def set_checkout_limits(self, request: dict[str, Any], actor: str) -> dict[str, int]:
        data = load_or_raise(CheckoutLimitsSchema(), request)
        with self.db.transaction() as session:
            row = session.get(CheckoutLimits, 1, with_for_update=True)
            if row is None:
                row = CheckoutLimits(id=1, **domain.DEFAULT_CHECKOUT_LIMITS)
                session.add(row)
            for field, value in data.items():
                setattr(row, field, value)
            session.flush()
            log.info("checkout limits changed", extra={"actor": actor, "changes": data})
            return _checkout_limits(session)

    @rpc
    def get_hold_windows(self) -> dict[str, int]:
        with self.db.transaction() as session:
            return _hold_windows(session)

    @rpc
    def set_hold_windows(self, request: dict[str, Any], actor: str) -> dict[str, int]:
        data = load_or_raise(HoldWindowsSchema(), request)
        with self.db.transaction() as session:
            for method, minutes in data.items():
                row = session.get(HoldWindow, method, with_for_update=True)
                if row is None:
                    session.add(HoldWindow(payment_method=method, minutes=minutes))
                else:
                    row.minutes = minutes
            session.flush()
            log.info("hold windows changed", extra={"actor": actor, "windows": data})
            return _hold_windows(session)

    @rpc
    def recovery_url(self, order_id: str) -> dict[str, Any]:
        """The link that brings an abandoned or canceled order's cart back (the same link
        each time, and the one the recovery email carried)."""
        with self.db.transaction() as session:
            order = session.get(Order, _uuid(order_id), with_for_update=True)
            if order is None:
                raise ServiceError("order_not_found", "No such order.", 404)
            if order.status not in domain.RECOVERABLE:
                raise ServiceError(
                    "not_recoverable", f"A {order.status} order has nothing to recover.", 409,
                    extra={"allowed": sorted(domain.RECOVERABLE)})
            token = unseal(recovery_token(order))
            return {"order_id": str(order.id), "number": f"#{order.number}",
                    "url": f"{STOREFRONT_URL.rstrip('/')}/recover/{token}"}

    @rpc
    def get_recovery_cart(self, token: str, customer_id: str | None = None) -> dict[str, Any]:
        """What a recovery link brings back: the cart at today's prices and stock, and the
        details to prefill checkout. The token is the only key: an unknown one is a 404."""
        with self.db.transaction() as session:
            order = session.scalars(select(Order).where(
                Order.recovery_token_hash == hash_token(token))).first() if token else None
            if order is None or order.status not in domain.RECOVERABLE:
                raise ServiceError("recovery_link_invalid",
                                   "This link is not valid (any more).", 404)
            cart = _priced(session, [
                domain.WantedLine(line.sku, line.quantity, line.unit_price, line.title)
                for line in order.lines], customer_id)
            return {**cart, "currency": cart["currency"] or order.currency,
                    "number": f"#{order.number}", "email": order.email,
                    "payment_method": order.payment_method,
                    "shipping_address": order.shipping_address,
                    "recovery_token": token}

    # saved carts ------------------------------------------------------------------------
    @rpc
    def get_cart(self, customer_id: str) -> dict[str, Any]:
        """The customer's saved cart at today's prices (an empty one if they have none)."""
        with self.db.transaction() as session:
            cart = session.get(Cart, _uuid(customer_id))
            return _cart_view(session, cart)

    @rpc
    def replace_cart(self, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Replace the lines (the same SKU twice is one line). A line already in the cart
        keeps the price the customer first saw, so a price change still shows."""
        data = load_or_raise(CartReplaceSchema(), request)
        quantities = _cart_quantities(data["lines"])
        with self.db.transaction() as session:
            cart = _locked_cart(session, customer_id)
            seen = {line.sku: line.price_seen for line in cart.lines}
            terms = pricing.terms_for(session, customer_id, quantities)
            prices = {sku: domain.customer_price(sku, p.price, terms).price
                      for sku, p in _known_products(session, quantities).items()}
            cart.lines = [CartLine(sku=sku, quantity=quantity,
                                   price_seen=seen.get(sku, prices.get(sku)), added_at=utcnow())
                          for sku, quantity in quantities.items()]
            cart.updated_at = utcnow()
            session.flush()
            return _cart_view(session, cart)

    @rpc
    def add_cart_line(self, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Add units of one product (to the line already there, if any)."""
        line = load_or_raise(LineRequestSchema(), request)
        with self.db.transaction() as session:
            cart = _locked_cart(session, customer_id)
            current = next((c for c in cart.lines if c.sku == line["sku"]), None)
            quantity = line["quantity"] + (current.quantity if current else 0)
            if quantity > MAX_QUANTITY:
                raise ServiceError("validation_failed", "Too many units in one line.", 422,
                                   errors={"quantity": [f"at most {MAX_QUANTITY} in all"]})
            if current is None:
                product = _known_products(session, [line["sku"]])[line["sku"]]
                if len(cart.lines) >= MAX_CART_LINES:
                    raise ServiceError("cart_full", "The cart has as many lines as it can.",
                                       422)
                terms = pricing.terms_for(session, customer_id, [line["sku"]])
                cart.lines.append(CartLine(
                    sku=line["sku"], quantity=quantity, added_at=utcnow(),
                    price_seen=domain.customer_price(product.sku, product.price,
                                                     terms).price))
            else:
                current.quantity = quantity
            cart.updated_at = utcnow()
            session.flush()
            return _cart_view(session, cart)

    @rpc
    def remove_cart_line(self, customer_id: str, sku: str) -> dict[str, Any]:
        """Take a product out of the cart (gone already: the same answer)."""
        with self.db.transaction() as session:
            cart = _locked_cart(session, customer_id)
            cart.lines = [line for line in cart.lines if line.sku != str(sku)]
            cart.updated_at = utcnow()
            session.flush()
            return _cart_view(session, cart)

    @rpc
    def merge_cart(self, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """A guest's cart (kept by the storefront) into the saved one, at login: quantities
        added and capped at stock. Says what it had to change."""
        data = load_or_raise(CartReplaceSchema(), request)
        guest = domain.merge_lines(data["lines"])
        with self.db.transaction() as session:
            cart = _locked_cart(session, customer_id)
            saved = {line.sku: line for line in cart.lines}
            products = _products(session, set(guest) | set(saved))
            merged, adjustments = domain.merge_carts(
                {sku: line.quantity for sku, line in saved.items()}, guest, products,
                MAX_QUANTITY)
            if len(merged) > MAX_CART_LINES:
                raise ServiceError("cart_full", "The carts together have too many lines.", 422)
            terms = pricing.terms_for(session, customer_id, merged)
            for sku, quantity in merged.items():
                if sku in saved:
                    saved[sku].quantity = quantity
                else:
                    cart.lines.append(CartLine(
                        sku=sku, quantity=quantity, added_at=utcnow(),
                        price_seen=domain.customer_price(sku, products[sku].price,
                                                         terms).price))
            cart.updated_at = utcnow()
            session.flush()
            return {"cart": _cart_view(session, cart), "adjustments": adjustments}

    # direct-buy links -------------------------------------------------------------------
    @rpc
    def create_buy_link(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        data = load_or_raise(BuyLinkInputSchema(), request)
        quantities = _cart_quantities(data["lines"])
        with self.db.transaction() as session:
            # The merchant links to what is for sale now, in one currency.
            domain.price_lines(quantities, _products(session, quantities))
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
                raise ServiceError("code_clash", "Could not pick a free link code.", 503)
            log.info("buy link created", extra={"code": link.code, "actor": actor})
            return _link_views(session, [link])[0]

    @rpc
    def list_buy_links(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            links = session.scalars(select(BuyLink).order_by(BuyLink.created_at.desc())).all()
            return _link_views(session, links)

    @rpc
    def update_buy_link(self, link_id: str, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
        data = load_or_raise(BuyLinkUpdateSchema(), request)
        with self.db.transaction() as session:
            link = session.get(BuyLink, _uuid(link_id, LINK_NOT_FOUND), with_for_update=True)
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
            return _link_views(session, [link])[0]

    @rpc
    def open_buy_link(self, code: str, customer_id: str | None = None) -> dict[str, Any]:
        """What a shopper gets from /b/{code}: the link's cart at today's prices."""
        with self.db.transaction() as session:
            link = session.scalar(select(BuyLink).where(BuyLink.code == str(code).lower()))
            if link is None:
                raise ServiceError("buy_link_not_found", "No such link.", 404)
            if not link.active:
                raise ServiceError("buy_link_disabled",
                                   "The store has switched this link off.", 410)
            cart = _priced(session, [domain.WantedLine(line["sku"], line["quantity"])
                                     for line in link.lines], customer_id)
            return {**cart, "code": link.code, "title": link.title}

    # manual orders ----------------------------------------------------------------------
    @rpc
    def create_manual_order(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        """An order the merchant takes (by phone, in the shop). Paid already: it is marked
        paid, in the same transaction. Otherwise the customer gets a payment link by email,
        and the merchant gets it in the answer."""
        data = load_or_raise(ManualOrderSchema(), request)
        with self.db.transaction() as session:
            order, access_token = self._create_order(
                session, {**data, "idempotency_key": None, "offer_account": False,
                          "account_exists": False},
                fingerprint=None, actor=actor,
                payment_link=not data["payment_processed"])
            if data["note"]:
                order.history.append(OrderHistory(at=utcnow(), actor=actor, field="note",
                                                  comment=data["note"],
                                                  notify_customer=False))
            if data["payment_processed"]:
                for field, state in [("payment_status", "paid"),
                                     *domain.follow_ups("payment_status", "paid", order)]:
                    change_state(session, order, field, state,
                                 actor if field == "payment_status" else "system",
                                 "Paid when the order was taken" if field == "payment_status"
                                 else "follows payment_status paid",
                                 field == "payment_status", {})  # "payment received" email
            session.flush()
            result = ADMIN_ORDER.dump(order)
        log.info("manual order", extra={"order_number": result["number"], "actor": actor})
        return {"order": result, "payment_url": None if data["payment_processed"] else
                f"{STOREFRONT_URL.rstrip('/')}/orders/{order.id}?token={access_token}&pay=1"}

    @consume_event("identity", ACCOUNT_EMAIL_VERIFIED)
    def handle_account_email_verified(self, envelope: Envelope) -> None:
        """The account proved this email: its guest orders become the customer's."""
        account = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            session.execute(
                update(Order)
                .where(Order.email == account["email"].strip().lower(),
                       Order.customer_id.is_(None))
                .values(customer_id=account["account_id"])
                .execution_options(synchronize_session=False)
            )

    @consume_event("identity", EMAIL_CHANGED)
    def handle_email_changed(self, envelope: Envelope) -> None:
        """An account's orders follow its email: their later emails go to the address the
        customer uses now (a change, or its undo)."""
        account = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            session.execute(
                update(Order)
                .where(Order.customer_id == account["account_id"],
                       Order.email != account["email"].strip().lower())
                .values(email=account["email"].strip().lower())
                .execution_options(synchronize_session=False))

    @consume_event("customers", CUSTOMER_ERASED)
    def handle_customer_erased(self, envelope: Envelope) -> None:
        """Forget the person in their orders; numbers, lines and totals stay (the store's
        books). Staff comments go too: they are free text, often about the person."""
        erased = load_payload(envelope)
        email = unseal(erased["email_sealed"])
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            orders = session.scalars(select(Order).where(
                _orders_of(erased["account_id"], email)).with_for_update()).all()
            for order in orders:
                domain.anonymise_order(order, erased["customer_id"])
            if orders:
                session.execute(update(OrderHistory)
                                .where(OrderHistory.order_id.in_([o.id for o in orders]),
                                       OrderHistory.comment.is_not(None))
                                .values(comment=None)
                                .execution_options(synchronize_session=False))
            if erased["account_id"]:
                session.execute(delete(CustomerMembership).where(
                    CustomerMembership.account_id == _uuid(str(erased["account_id"]))))
                session.execute(delete(CartLine).where(
                    CartLine.customer_id == _uuid(str(erased["account_id"]))))
                session.execute(delete(Cart).where(
                    Cart.customer_id == _uuid(str(erased["account_id"]))))
            forget_in_outbox(session, [email])

    @rpc
    def export_orders_of(self, account_id: str | None, email: str) -> list[dict[str, Any]]:
        """Every order of a customer, whole (lines, history), for their data export."""
        with self.db.transaction() as session:
            orders = session.scalars(select(Order).where(_orders_of(account_id, email))
                                     .order_by(Order.placed_at)).all()
            return ADMIN_ORDERS.dump(orders)

    @rpc
    def place_order(self, request: dict[str, Any]) -> dict[str, Any]:
        """Create an order from a cart: priced and stocked from our own catalogue.

        The order, its stock holds, its history row and ``order_placed`` commit together.
        """
        data = load_or_raise(PLACE_ORDER, request)
        fingerprint = domain.request_fingerprint(request)
        key = data["idempotency_key"]
        if key:
            replay = self._claim_key(key, fingerprint)
            if replay is not None:
                return replay
        try:
            with self.db.transaction() as session:
                order, _ = self._create_order(session, data, fingerprint)
                if key:
                    session.execute(update(IdempotencyKey).where(IdempotencyKey.key == key)
                                    .values(order_id=order.id))
                result = ORDER.dump(order)
                for line in result["lines"]:
                    line["previous_unit_price"] = order.previous_prices.get(line["sku"])
        except Exception:
            if key:  # nothing was made: a retry with this key may try again
                with self.db.transaction() as session:
                    session.execute(delete(IdempotencyKey).where(
                        IdempotencyKey.key == key, IdempotencyKey.order_id.is_(None)))
            raise
        log.info("order placed", extra={"order_number": result["number"],
                                        "email": mask_email(result["email"])})
        return {**result, "replayed": False}

    def _claim_key(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """Claim an Idempotency-Key in its own committed transaction; or answer as the first
        request did (its order), or refuse (another body: 422; still running: 409)."""
        now = utcnow()
        try:
            with self.db.transaction() as session:
                claim = session.get(IdempotencyKey, key, with_for_update=True)
                if claim is None:
                    session.add(IdempotencyKey(key=key, fingerprint=fingerprint, claimed_at=now))
                    return None
                if claim.fingerprint != fingerprint:
                    raise ServiceError(
                        "idempotency_key_reused",
                        "This Idempotency-Key was used for a different request.", 422)
                if claim.order_id is not None:
                    order = session.get(Order, claim.order_id)
                    return {**ORDER.dump(order), "replayed": True}
                if now - claim.claimed_at < domain.IDEMPOTENCY_CLAIM_TIMEOUT:
                    raise _in_progress()
                claim.claimed_at = now  # the first attempt died mid-way: take it over
                return None
        except IntegrityError:  # claimed by a concurrent request a moment ago
            raise _in_progress() from None

    # helpers ----------------------------------------------------------------------------
    def _create_order(self, session: Any, data: dict[str, Any], fingerprint: str | None,
                      actor: str = "customer", payment_link: bool = False
                      ) -> tuple[Order, str]:
        """A new order, stock held, with its first history row and ``order_placed``; returns
        it with its access token (the guest's key, sent by email)."""
        recovered_from = None
        if data.get("recovery_token"):
            recovered_from = session.scalar(select(Order.id).where(
                Order.recovery_token_hash == hash_token(data["recovery_token"]),
                Order.status.in_(domain.RECOVERABLE)))
            if recovered_from is None:
                raise ServiceError("recovery_link_invalid",
                                   "This recovery link is not valid (any more).", 422,
                                   errors={"recovery_token": ["unknown or expired"]})
        cart = None
        if data.get("cart") == "saved":
            if data["customer_id"] is None:
                raise ServiceError("login_required", "Log in to check out a saved cart.", 401)
            # Locked until commit: a second checkout of the same cart waits, then finds it
            # empty; a checkout that fails rolls back and leaves the cart as it was.
            cart = _locked_cart(session, data["customer_id"])
            if not cart.lines:
                raise ServiceError("cart_empty", "The saved cart is empty.", 422)
            data = {**data, "lines": [{"sku": line.sku, "quantity": line.quantity,
                                       "price_seen": line.price_seen}
                                      for line in cart.lines]}
        buy_link_id = None
        if data.get("buy_link"):
            # A link disabled while the shopper was checking out still gets the credit.
            buy_link_id = session.scalar(select(BuyLink.id).where(
                BuyLink.code == data["buy_link"].strip().lower()))
            if buy_link_id is None:
                raise ServiceError("validation_failed", "No such buy link.", 422,
                                   errors={"buy_link": ["unknown link"]})
        if data["payment_method"] in domain.PROVIDER_PAYMENT_METHODS and self.payments is None:
            raise ServiceError("payment_method_unavailable", "This store takes no card "
                               "payments (no payment provider is configured).", 422,
                               errors={"payment_method": ["card payments are not set up"]})
        quantities = domain.merge_lines(data["lines"])
        if actor == "customer":  # the merchant's own manual orders are not limited
            self._check_checkout_limits(session, data["email"], quantities)
        products = {
            p.sku: p
            for p in session.scalars(select(Product).where(Product.sku.in_(quantities)))
        }
        terms = pricing.terms_for(session, data["customer_id"], quantities)
        if actor != "customer":
            # A hidden-price member is told to contact the store; the merchant then takes
            # the order, at the member's prices as if shown.
            terms = [dataclasses.replace(t, hidden=False) for t in terms]
        priced = domain.price_lines(quantities, products, data["locale"], terms)
        shipping = domain.needs_shipping(priced)
        if shipping and not data["shipping_address"]:
            raise ServiceError("validation_failed", "A shipping address is required.", 422,
                               errors={"shipping_address": ["required for physical products"]})
        self._hold_stock(session, priced, products)

        subtotal = sum(line.line_total for line in priced)
        now = utcnow()
        access_token, access_token_hash = new_token()
        order = Order(
            number=self._next_order_number(session),
            status="pending_payment",
            payment_status="pending",
            fulfillment_status="unfulfilled",
            payment_method=data["payment_method"],
            email=data["email"],
            customer_id=data["customer_id"],
            locale=data["locale"],
            currency=products[priced[0].sku].currency,
            subtotal=subtotal,
            shipping_total=0,  # shipping rates are not modelled yet
            total=subtotal,
            shipping_address=data["shipping_address"] if shipping else None,
            billing_address=data.get("billing_address") or (
                data["shipping_address"] if shipping else None),
            payment_instructions=data.get("payment_instructions")
            if data["payment_method"] in domain.MANUAL_PAYMENT_METHODS else None,
            idempotency_key=data["idempotency_key"],
            request_fingerprint=fingerprint,
            access_token_hash=access_token_hash,
            access_token_sealed=seal(access_token),
            channel="admin" if actor != "customer" else "storefront",
            created_by=actor if actor != "customer" else None,
            recovered_from=recovered_from,
            buy_link_id=buy_link_id,
            account_offer_expires_at=now + domain.ACCOUNT_OFFER_TTL
            if data["offer_account"] and data["customer_id"] is None else None,
            placed_at=now,
            lines=[
                OrderLine(sku=line.sku, title=line.title, quantity=line.quantity,
                          unit_price=line.unit_price, line_total=line.line_total,
                          digital=line.digital, list_price=line.list_price,
                          price_source=line.price_source)
                for line in priced
            ],
            history=[OrderHistory(at=now, actor=actor, field="status", from_value=None,
                                  to_value="pending_payment",
                                  comment="Order placed" if actor == "customer"
                                  else "Order taken by staff", notify_customer=True)],
        )
        # What the shopper was shown and no longer holds (a price list changed meanwhile): the
        # order is at today's price, and its answer says so, line by line.
        seen = {line["sku"]: line.get("price_seen") for line in data["lines"]}
        order.previous_prices = {line.sku: seen[line.sku] for line in priced
                                 if seen.get(line.sku) not in (None, line.unit_price)}
        session.add(order)
        if cart is not None:
            cart.lines.clear()  # the order holds them now (same transaction)
            cart.updated_at = now
        session.flush()
        payload = ORDER.dump(order)
        emit(session, ORDER_PLACED, {
            **payload,
            "order_id": order.id,
            "placed_at": order.placed_at,
            "notify_customer": True,
            "access_token_sealed": seal(access_token),
            "offer_account": data["offer_account"] and order.customer_id is None,
            "account_exists": data.get("account_exists", False),
            "channel": order.channel, "payment_link": payment_link,
        })
        return order, access_token

    def _check_checkout_limits(self, session: Any, email: str,
                               quantities: dict[str, int]) -> None:
        """Refuse a checkout that breaks the merchant's limits. The email's unpaid orders are
        counted under a lock on that email (PostgreSQL advisory lock; SQLite writes one at a
        time), so two checkouts at once cannot both slip under a limit."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                            {"key": f"unpaid-orders:{email}"})
        unpaid = and_(Order.email == email, Order.status == "pending_payment")
        count_unpaid = select(func.count()).select_from(Order).where(unpaid).scalar_subquery()
        # The limits and the shopper's unpaid orders in one round trip (the row the migration
        # made); the defaults if someone emptied the table by hand.
        found = session.execute(select(CheckoutLimits, count_unpaid)
                                .where(CheckoutLimits.id == 1)).first()
        if found is None:
            limits = dict(domain.DEFAULT_CHECKOUT_LIMITS)
            unpaid_orders = session.scalar(select(count_unpaid))
        else:
            limits = {name: getattr(found[0], name) for name in domain.DEFAULT_CHECKOUT_LIMITS}
            unpaid_orders = found[1]
        held = dict(session.execute(  # most shoppers have no unpaid order: no second query
            select(OrderLine.sku, func.sum(OrderLine.quantity))
            .join(Order, Order.id == OrderLine.order_id)
            .where(unpaid, OrderLine.sku.in_(quantities))
            .group_by(OrderLine.sku)).all()) if unpaid_orders else {}
        problem = domain.checkout_limit_problems(quantities, held, unpaid_orders, limits)
        if problem is not None:
            code, errors = problem
            status = 422 if code == "quantity_limit" else 409
            raise ServiceError(code, "This order is over the store's limits.", status,
                               errors=errors)

    def _hold_stock(self, session: Any, priced: list[domain.PricedLine],
                    products: dict[str, Product]) -> None:
        # One conditional UPDATE per line, in SKU order (no deadlocks between checkouts):
        # the row lock makes "is there enough?" and "take it" one step, so no overselling.
        for line in priced:
            if products[line.sku].stock is None:
                continue
            taken = session.execute(
                update(Product)
                .where(Product.sku == line.sku, Product.stock >= line.quantity)
                .values(stock=Product.stock - line.quantity)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken != 1:
                raise ServiceError("out_of_stock", f"Not enough stock for {line.sku}.", 409,
                                   errors={"lines": {line.sku: ["not enough stock"]}})

    def _next_order_number(self, session: Any) -> int:
        if session.get_bind().dialect.name == "postgresql":
            # No lock held until commit (unlike a counter row); a checkout that fails after
            # this leaves a gap in the numbers, as most stores' numbers have.
            return session.execute(text("SELECT nextval('order_number_seq')")).scalar_one()
        number = session.execute(
            update(Counter).where(Counter.name == "order_number")
            .values(value=Counter.value + 1).returning(Counter.value)
        ).scalar_one_or_none()
        if number is None:
            session.add(Counter(name="order_number", value=domain.FIRST_ORDER_NUMBER))
            session.flush()
            number = domain.FIRST_ORDER_NUMBER
        return number


MAX_CART_LINES = 100
LINK_NOT_FOUND = ("buy_link_not_found", "No such buy link.")
CATEGORY_NOT_FOUND = ("category_not_found", "No such category.")


def _products(session: Any, skus: Any) -> dict[str, Product]:
    skus = list(skus)
    if not skus:
        return {}
    return {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))}


def _known_products(session: Any, skus: Any) -> dict[str, Product]:
    """The products, in one query. A cart may hold a product that is off sale or sold out
    (flagged when read), not one that never existed."""
    products = _products(session, skus)
    unknown = sorted(set(skus) - set(products))
    if unknown:
        raise ServiceError("unknown_product", "Some products do not exist.", 422,
                           errors={"lines": {sku: ["unknown product"] for sku in unknown}})
    return products


def _cart_quantities(lines: list[dict[str, Any]]) -> dict[str, int]:
    quantities = domain.merge_lines(lines)
    too_many = {sku: [f"at most {MAX_QUANTITY} in all"]
                for sku, quantity in quantities.items() if quantity > MAX_QUANTITY}
    if too_many:
        raise ServiceError("validation_failed", "Too many units in one line.", 422,
                           errors={"lines": too_many})
    return quantities


def _locked_cart(session: Any, customer_id: Any) -> Cart:
    """The customer's cart row, made if missing, locked until commit: changes from two
    devices at once are applied one after the other, none lost."""
    customer = customer_id if isinstance(customer_id, uuid.UUID) else _uuid(customer_id)
    return locked_row(session, Cart, customer, customer_id=customer, updated_at=utcnow())


def _priced(session: Any, wanted: list[domain.WantedLine], customer_id: Any = None
            ) -> dict[str, Any]:
    skus = {w.sku for w in wanted}
    return domain.price_cart(wanted, _products(session, skus),
                             pricing.terms_for(session, customer_id, skus))


def _cart_view(session: Any, cart: Cart | None) -> dict[str, Any]:
    lines = [domain.WantedLine(line.sku, line.quantity, line.price_seen)
             for line in (cart.lines if cart else [])]
    return SAVED_CART.dump({**_priced(session, lines, cart.customer_id if cart else None),
                            "updated_at": cart.updated_at if cart else None})


def _new_link_code() -> str:
    return "".join(secrets.choice(domain.BUY_LINK_ALPHABET)
                   for _ in range(domain.BUY_LINK_CODE_LENGTH))


def _link_views(session: Any, links: Any) -> list[dict[str, Any]]:
    """Links with their orders and revenue, counted from the orders themselves in one query:
    an order records its link once, so nothing (a redelivered event, say) counts it twice."""
    ids = [link.id for link in links]
    figures = {row.buy_link_id: row for row in session.execute(
        select(Order.buy_link_id, func.count().label("orders"),
               func.count().filter(Order.payment_status == "paid").label("paid_orders"),
               func.coalesce(func.sum(Order.total).filter(Order.payment_status == "paid"), 0)
               .label("revenue"), func.min(Order.currency).label("currency"))
        .where(Order.buy_link_id.in_(ids)).group_by(Order.buy_link_id))} if ids else {}
    base = STOREFRONT_URL.rstrip("/")
    views = []
    for link in links:
        row = figures.get(link.id)
        views.append(BUY_LINK.dump({
            "id": link.id, "code": link.code, "url": f"{base}/b/{link.code}",
            "title": link.title, "lines": link.lines, "active": link.active,
            "created_by": link.created_by, "created_at": link.created_at,
            "disabled_at": link.disabled_at, "orders": row.orders if row else 0,
            "paid_orders": row.paid_orders if row else 0,
            "revenue": int(row.revenue) if row else 0,
            "currency": row.currency if row else None}))
    return views


def _checkout_limits(session: Any) -> dict[str, int]:
    row = session.get(CheckoutLimits, 1)
    if row is None:
        return dict(domain.DEFAULT_CHECKOUT_LIMITS)
    return {name: getattr(row, name) for name in domain.DEFAULT_CHECKOUT_LIMITS}


def _hold_windows(session: Any) -> dict[str, int]:
    stored = {row.payment_method: row.minutes for row in session.scalars(select(HoldWindow))}
    return {method: domain.hold_minutes(method, stored) for method in domain.PAYMENT_METHODS}


def _orders_of(account_id: Any, email: str) -> Any:
    """A customer's orders: the account's, and the email's guest orders."""
    match = and_(Order.customer_id.is_(None), Order.email == email.strip().lower())
    if account_id:
        match = or_(Order.customer_id == _uuid(str(account_id)), match)
    return match


def _in_progress() -> ServiceError:
    return ServiceError("idempotency_in_progress",
                        "A request with this Idempotency-Key is still being processed.", 409,
                        extra={"retry_after": 1})


def _uuid(value: str, missing: tuple[str, str] = ("order_not_found", "No such order.")
          ) -> uuid.UUID:
    """An id from a URL; not a UUID at all is the same 404 as an id that is not there."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(*missing, 404) from None
