"""Orders service: its whole API, one entrypoint each, to scan. The work is in the use-case
modules: catalogue, carts, checkout, buy_links, holds (limits, hold windows, abandonment,
recovery), order_changes, payments, pricing, listings, account_events; the rules in domain,
a state change in transitions."""

from __future__ import annotations

import logging
from typing import Any

from nameko.timer import timer

from messaging.config import ConfigProvider, from_environment
from messaging.consumer import consume_event
from messaging.contracts import (
    ACCOUNT_EMAIL_VERIFIED,
    CATEGORY_DELETED,
    CUSTOMER_CATEGORIES_CHANGED,
    CUSTOMER_ERASED,
    EMAIL_CHANGED,
)
from messaging.contracts.orders import OrdersError
from messaging.contracts.orders_admin import RefundRequestSchema
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.health import HealthEndpoints
from messaging.logs import LogContext
from messaging.rpc import rpc
from services.orders import (
    account_events,
    buy_links,
    carts,
    catalogue,
    checkout,
    domain,
    holds,
    listings,
    order_changes,
    payments,
    pricing,
)
from services.orders.config import OrdersConfig
from services.orders.dependencies import PaymentProviderDependency, orders_database
from services.orders.models import (
    Order,
)
from services.orders.wire import (
    ADMIN_ORDER,
    START_PAYMENT,
)

log = logging.getLogger(__name__)

ABANDON_SWEEP_SECONDS = from_environment(OrdersConfig).abandon_sweep_seconds  # see OrdersConfig


class OrdersService(HealthEndpoints):
    name = "orders"

    db = orders_database()
    payments = PaymentProviderDependency()
    config = ConfigProvider(OrdersConfig)
    log_context = LogContext()

    @rpc
    def list_products(self, customer_id: str | None = None, prices_visible: bool = True
                      ) -> list[dict[str, Any]]:
        return catalogue.list_products(self.db, customer_id, prices_visible)

    @rpc
    def list_all_products(self) -> list[dict[str, Any]]:
        """The whole catalogue for the merchant, inactive products included."""
        return catalogue.list_all_products(self.db)

    @rpc
    def create_product(self, request: dict[str, Any]) -> dict[str, Any]:
        return catalogue.create_product(self.db, request)

    @rpc
    def update_product(self, sku: str, request: dict[str, Any]) -> dict[str, Any]:
        return catalogue.update_product(self.db, sku, request)

    @rpc
    def get_order(self, order_id: str) -> dict[str, Any]:
        return listings.get_order(self.db, order_id)

    @rpc
    def get_guest_order(self, order_id: str, token: str) -> dict[str, Any]:
        return listings.get_guest_order(self.db, order_id, token)

    @rpc
    def open_account_offer(self, order_id: str, token: str) -> dict[str, Any]:
        return order_changes.open_account_offer(self.db, order_id, token)

    @rpc
    def close_account_offer(self, order_id: str) -> None:
        """The offer was taken: it cannot be taken again."""
        return order_changes.close_account_offer(self.db, order_id)

    @rpc
    def list_customer_orders(self, customer_id: str, page: dict[str, Any]) -> dict[str, Any]:
        """A customer's orders, newest first; ``before`` (the last placed_at seen) pages on."""
        return listings.list_customer_orders(self.db, customer_id, page)

    @rpc
    def recent_orders_of(self, account_id: str | None, email: str, limit: int = 10
                         ) -> list[dict[str, Any]]:
        return listings.recent_orders_of(self.db, account_id, email, limit)

    @rpc
    def get_customer_order(self, customer_id: str, order_id: str) -> dict[str, Any]:
        return listings.get_customer_order(self.db, customer_id, order_id)

    # the merchant's actions ------------------------------------------------------------
    @rpc
    def change_order(self, order_id: str, field: str, request: dict[str, Any], actor: str
                     ) -> dict[str, Any]:
        return order_changes.change_order(self.db, self.payments, order_id, field, request, actor)

    @rpc
    def correct_order_email(self, order_id: str, request: dict[str, Any], actor: str
                            ) -> dict[str, Any]:
        return order_changes.correct_order_email(self.db, order_id, request, actor)

    @rpc
    def add_note(self, order_id: str, request: dict[str, Any], actor: str) -> dict[str, Any]:
        return order_changes.add_note(self.db, order_id, request, actor)

    # category prices --------------------------------------------------------------------
    @rpc
    def get_category_pricing(self, category_id: str) -> dict[str, Any]:
        return pricing.get_category_pricing(self.db, category_id)

    @rpc
    def set_category_pricing(self, category_id: str, request: dict[str, Any], actor: str
                             ) -> dict[str, Any]:
        return pricing.set_category_pricing(self.db, category_id, request, actor)

    @rpc
    def get_category_prices(self, category_id: str) -> dict[str, Any]:
        return pricing.get_category_prices(self.db, category_id)

    @rpc
    def set_category_prices(self, category_id: str, request: dict[str, Any], actor: str
                            ) -> dict[str, Any]:
        return pricing.set_category_prices(self.db, category_id, request, actor)

    @consume_event("customers", CUSTOMER_CATEGORIES_CHANGED)
    def handle_customer_categories_changed(self, envelope: Envelope) -> None:
        return pricing.handle_customer_categories_changed(self.db, envelope)

    @consume_event("customers", CATEGORY_DELETED)
    def handle_category_deleted(self, envelope: Envelope) -> None:
        return pricing.handle_category_deleted(self.db, envelope)

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
                    raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
            else:
                order = payments.order_for_payer(session, _uuid(order_id), customer_id, token)
            if self.payments is None:
                raise ServiceError(OrdersError.CARD_PAYMENTS_UNAVAILABLE,
                                   "This store takes no card payments.", 409)
            return START_PAYMENT.dump(payments.start_payment(session, self.payments, order,
                                                             self.config.links))

    @rpc
    def receive_payment_event(self, provider: str, body: str, signature: str | None
                              ) -> dict[str, Any]:
        """A provider's webhook: 400 unless its signature is right, then handled once."""
        if self.payments is None or provider != self.payments.name:
            raise ServiceError(OrdersError.UNKNOWN_PROVIDER, f"No {provider} payments here.", 404)
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
                raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
            payments.refund_order(session, self.payments, order, data["amount"],
                                  data["comment"], data["notify_customer"], actor)
            session.flush()
            return ADMIN_ORDER.dump(order)

    @rpc
    def test_payment_page(self, session_id: str) -> dict[str, Any]:
        """What the test provider's page shows (404 unless the test provider is on)."""
        if self.payments is None or self.payments.name != "test":
            raise ServiceError(OrdersError.PAYMENT_SESSION_NOT_FOUND, "No such payment page.", 404)
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
            raise ServiceError(OrdersError.PAYMENT_SESSION_NOT_FOUND, "No such payment page.", 404)
        with self.db.transaction() as session:
            pay_session, order = payments.test_page(session, session_id)
            if pay_session.status != "open" or pay_session.expires_at <= utcnow():
                raise ServiceError(OrdersError.PAYMENT_SESSION_CLOSED,
                                   "This payment page is closed.",
                                   409)
            data = {"session": session_id, "payment": f"pay_test_{pay_session.id.hex[:20]}",
                    "amount": pay_session.amount, "currency": pay_session.currency}
            order_id = order.id
        body, signature = self.payments.signed_event(
            "payment.succeeded" if outcome == "pay" else "payment.declined", data)
        return {"body": body, "signature": signature,
                "header": self.payments.signature_header,
                "return_url": self.config.links.order(
                    str(order_id), payment="done" if outcome == "pay" else "declined")}

    @rpc
    def get_admin_order(self, order_id: str) -> dict[str, Any]:
        return listings.get_admin_order(self.db, order_id)

    @rpc
    def list_admin_orders(self, query: dict[str, Any]) -> dict[str, Any]:
        return listings.list_admin_orders(self.db, query)

    @rpc
    def order_stats(self, first_day: str, last_day: str, currency: str) -> dict[str, Any]:
        return listings.order_stats(self.db, first_day, last_day, currency)

    @rpc
    def export_page(self, placed_from: str, placed_to: str, after: str | None,
                    limit: int = 500, status: str | None = None) -> dict[str, Any]:
        return listings.export_page(self.db, placed_from, placed_to, after, limit, status)

    # abandonment and recovery -----------------------------------------------------------
    @timer(interval=ABANDON_SWEEP_SECONDS)
    def abandon_expired_orders(self) -> int:
        return holds.abandon_expired_orders(self.db)

    @rpc
    def get_checkout_limits(self) -> dict[str, int]:
        return holds.get_checkout_limits(self.db)

    @rpc
    def set_checkout_limits(self, request: dict[str, Any], actor: str) -> dict[str, int]:
        return holds.set_checkout_limits(self.db, request, actor)

    @rpc
    def get_hold_windows(self) -> dict[str, int]:
        return holds.get_hold_windows(self.db)

    @rpc
    def set_hold_windows(self, request: dict[str, Any], actor: str) -> dict[str, int]:
        return holds.set_hold_windows(self.db, request, actor)

    @rpc
    def recovery_url(self, order_id: str) -> dict[str, Any]:
        return holds.recovery_url(self.db, self.config.links, order_id)

    @rpc
    def get_recovery_cart(self, token: str, customer_id: str | None = None) -> dict[str, Any]:
        return holds.get_recovery_cart(self.db, token, customer_id)

    # saved carts ------------------------------------------------------------------------
    @rpc
    def get_cart(self, customer_id: str) -> dict[str, Any]:
        """The customer's saved cart at today's prices (an empty one if they have none)."""
        return carts.get_cart(self.db, customer_id)

    @rpc
    def replace_cart(self, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return carts.replace_cart(self.db, customer_id, request)

    @rpc
    def add_cart_line(self, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Add units of one product (to the line already there, if any)."""
        return carts.add_cart_line(self.db, customer_id, request)

    @rpc
    def remove_cart_line(self, customer_id: str, sku: str) -> dict[str, Any]:
        """Take a product out of the cart (gone already: the same answer)."""
        return carts.remove_cart_line(self.db, customer_id, sku)

    @rpc
    def merge_cart(self, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return carts.merge_cart(self.db, customer_id, request)

    # direct-buy links -------------------------------------------------------------------
    @rpc
    def create_buy_link(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        return buy_links.create_buy_link(self.db, self.config.links, request, actor)

    @rpc
    def list_buy_links(self) -> list[dict[str, Any]]:
        return buy_links.list_buy_links(self.db, self.config.links)

    @rpc
    def update_buy_link(self, link_id: str, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
        return buy_links.update_buy_link(self.db, self.config.links, link_id, request, actor)

    @rpc
    def open_buy_link(self, code: str, customer_id: str | None = None) -> dict[str, Any]:
        """What a shopper gets from /b/{code}: the link's cart at today's prices."""
        return buy_links.open_buy_link(self.db, code, customer_id)

    # manual orders ----------------------------------------------------------------------
    @rpc
    def create_manual_order(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        return order_changes.create_manual_order(self.db, self.payments, self.config.links,
                                                 request, actor)

    @consume_event("identity", ACCOUNT_EMAIL_VERIFIED)
    def handle_account_email_verified(self, envelope: Envelope) -> None:
        """The account proved this email: its guest orders become the customer's."""
        return account_events.handle_account_email_verified(self.db, envelope)

    @consume_event("identity", EMAIL_CHANGED)
    def handle_email_changed(self, envelope: Envelope) -> None:
        return account_events.handle_email_changed(self.db, envelope)

    @consume_event("customers", CUSTOMER_ERASED)
    def handle_customer_erased(self, envelope: Envelope) -> None:
        return account_events.handle_customer_erased(self.db, envelope)

    @rpc
    def export_orders_of(self, account_id: str | None, email: str) -> list[dict[str, Any]]:
        """Every order of a customer, whole (lines, history), for their data export."""
        return listings.export_orders_of(self.db, account_id, email)

    @rpc
    def place_order(self, request: dict[str, Any]) -> dict[str, Any]:
        """Create an order from a cart: priced and stocked from our own catalogue (the
        order, its stock holds, its history row and ``order_placed`` commit together)."""
        return checkout.place_order(self.db, self.payments, request)


_uuid = domain.id_or_404  # an id from a URL, or the 404 for a missing thing
