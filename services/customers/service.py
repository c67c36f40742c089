"""Customers service: its whole API, one entrypoint each, to scan. The work is in the
use-case modules: profiles (records as the merchant and the customer edit them), listing
(the list and insights), categories, address_book, ledger (order events and figures),
account_events; shared lookups in records, the rules in domain."""

from __future__ import annotations

import logging
from typing import Any

from messaging.consumer import consume_event, consume_events
from messaging.contracts import (
    ACCOUNT_APPROVED,
    ACCOUNT_DISABLED,
    ACCOUNT_EMAIL_VERIFIED,
    ACCOUNT_ENABLED,
    ACCOUNT_INVITED,
    ACCOUNT_REGISTERED,
    EMAIL_CHANGED,
    ORDER_ABANDONED,
    ORDER_CANCELED,
    ORDER_EMAIL_CORRECTED,
    ORDER_PLACED,
    ORDER_STATUS_CHANGED,
    PAYMENT_STATUS_CHANGED,
)
from messaging.envelope import Envelope
from messaging.health import HealthEndpoints
from messaging.logs import LogContext
from messaging.rpc import rpc
from services.customers import (
    account_events,
    address_book,
    categories,
    ledger,
    listing,
    profiles,
)
from services.customers.dependencies import customers_database

log = logging.getLogger(__name__)


class CustomersService(HealthEndpoints):
    name = "customers"

    db = customers_database()
    log_context = LogContext()

    @rpc
    def get_customer_by_email(self, email: str) -> dict[str, Any]:
        return profiles.get_customer_by_email(self.db, email)

    @rpc
    def get_customer(self, customer_id: str) -> dict[str, Any]:
        return profiles.get_customer(self.db, customer_id)

    @rpc
    def create_customer(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        """A customer the merchant adds by hand (no account; see identity.invite_account)."""
        return profiles.create_customer(self.db, request, actor)

    @rpc
    def update_customer(self, customer_id: str, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
        return profiles.update_customer(self.db, customer_id, request, actor)

    @rpc
    def delete_customer(self, customer_id: str, actor: str) -> None:
        return profiles.delete_customer(self.db, customer_id, actor)

    @rpc
    def erase_customer(self, customer_id: str, actor: str) -> dict[str, Any]:
        return profiles.erase_customer(self.db, customer_id, actor)

    @rpc
    def export_customer(self, customer_id: str) -> dict[str, Any]:
        """All this service holds about a customer (the gateway adds the other services')."""
        return profiles.export_customer(self.db, customer_id)

    # the customer's own profile (by account id) -----------------------------------------
    @rpc
    def get_profile(self, account_id: str) -> dict[str, Any]:
        return profiles.get_profile(self.db, account_id)

    @rpc
    def update_profile(self, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return profiles.update_profile(self.db, account_id, request)

    # the merchant's view -----------------------------------------------------------------
    @rpc
    def list_customers(self, query: dict[str, Any]) -> dict[str, Any]:
        """Filtered, sorted, keyset-paged (stable under inserts), with the total count."""
        return listing.list_customers(self.db, query)

    @rpc
    def insights(self, query: dict[str, Any]) -> dict[str, Any]:
        return listing.insights(self.db, query)

    @rpc
    def get_customer_detail(self, customer_id: str) -> dict[str, Any]:
        return profiles.get_customer_detail(self.db, customer_id)

    # categories ------------------------------------------------------------------------
    @rpc
    def list_categories(self) -> list[dict[str, Any]]:
        return categories.list_categories(self.db)

    @rpc
    def create_category(self, request: dict[str, Any]) -> dict[str, Any]:
        return categories.create_category(self.db, request)

    @rpc
    def rename_category(self, category_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return categories.rename_category(self.db, category_id, request)

    @rpc
    def get_category(self, category_id: str) -> dict[str, Any]:
        return categories.get_category(self.db, category_id)

    @rpc
    def delete_category(self, category_id: str, actor: str = "staff") -> None:
        return categories.delete_category(self.db, category_id, actor)

    @rpc
    def add_members_by_filter(self, category_id: str, query: dict[str, Any]) -> dict[str, int]:
        return categories.add_members_by_filter(self.db, category_id, query)

    @rpc
    def set_membership(self, category_id: str, customer_id: str, member: bool) -> None:
        """Idempotent: adding a member twice, or removing a non-member, changes nothing."""
        return categories.set_membership(self.db, category_id, customer_id, member)

    # the customer's own address book (by account id) -----------------------------------
    @rpc
    def list_addresses(self, account_id: str) -> list[dict[str, Any]]:
        return address_book.list_addresses(self.db, account_id)

    @rpc
    def get_address(self, account_id: str, address_id: str) -> dict[str, Any]:
        return address_book.get_address(self.db, account_id, address_id)

    @rpc
    def add_address(self, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return address_book.add_address(self.db, account_id, request)

    @rpc
    def update_address(self, account_id: str, address_id: str, request: dict[str, Any]
                       ) -> dict[str, Any]:
        return address_book.update_address(self.db, account_id, address_id, request)

    @rpc
    def delete_address(self, account_id: str, address_id: str) -> None:
        return address_book.delete_address(self.db, account_id, address_id)

    @rpc
    def checkout_prefill(self, account_id: str) -> dict[str, Any]:
        """What a checkout form starts with: names, phone, default addresses."""
        return address_book.checkout_prefill(self.db, account_id)

    # A batch costs about as much as one order (the statements are per batch): new orders
    # wait up to 50 ms for company. Nobody waits on a customer's figures to that degree.
    @consume_events("orders", ORDER_PLACED, linger=0.05)
    def handle_order_placed(self, envelopes: list[Envelope]) -> None:
        """New orders, a batch at a time: the checkout rate's event."""
        return ledger.handle_orders_placed(self.db, envelopes)

    @consume_event("orders", ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, envelope: Envelope) -> None:
        return ledger.handle_order_status_changed(self.db, envelope)

    @consume_event("orders", ORDER_CANCELED)
    def handle_order_canceled(self, envelope: Envelope) -> None:
        return ledger.handle_order_canceled(self.db, envelope)

    @consume_event("orders", ORDER_ABANDONED)
    def handle_order_abandoned(self, envelope: Envelope) -> None:
        return ledger.handle_order_abandoned(self.db, envelope)

    @consume_event("orders", PAYMENT_STATUS_CHANGED)
    def handle_payment_status_changed(self, envelope: Envelope) -> None:
        return ledger.handle_payment_status_changed(self.db, envelope)

    @consume_event("orders", ORDER_EMAIL_CORRECTED)
    def handle_order_email_corrected(self, envelope: Envelope) -> None:
        """A guest order moved to another email: its figures move to that customer."""
        return ledger.handle_order_email_corrected(self.db, envelope)

    @consume_event("identity", ACCOUNT_REGISTERED)
    def handle_account_registered(self, envelope: Envelope) -> None:
        return account_events.handle_account_registered(self.db, envelope)

    @consume_event("identity", ACCOUNT_INVITED)
    def handle_account_invited(self, envelope: Envelope) -> None:
        """Same rule as registration: a new email gets its record, a guest's waits for proof."""
        return account_events.handle_account_invited(self.db, envelope)

    @consume_event("identity", ACCOUNT_EMAIL_VERIFIED)
    def handle_account_email_verified(self, envelope: Envelope) -> None:
        return account_events.handle_account_email_verified(self.db, envelope)

    @consume_event("identity", ACCOUNT_APPROVED)
    def handle_account_approved(self, envelope: Envelope) -> None:
        return account_events.handle_account_approved(self.db, envelope)

    @consume_event("identity", ACCOUNT_DISABLED)
    def handle_account_disabled(self, envelope: Envelope) -> None:
        return account_events.handle_account_disabled(self.db, envelope)

    @consume_event("identity", ACCOUNT_ENABLED)
    def handle_account_enabled(self, envelope: Envelope) -> None:
        return account_events.handle_account_enabled(self.db, envelope)

    @consume_event("identity", EMAIL_CHANGED)
    def handle_email_changed(self, envelope: Envelope) -> None:
        return account_events.handle_email_changed(self.db, envelope)


