"""Notifications service: turns events into emails, each delivered once and logged. Its whole
API, one entrypoint each, to scan. Which event sends which email: email_kinds; logging and
sending: sending; the log as merchants see it: delivery_log; the merchant's choices:
email_settings; the rules: domain."""

from __future__ import annotations

from typing import Any

from nameko.timer import timer

from messaging.consumer import consume_event, consume_events
from messaging.contracts import (
    ACCOUNT_APPROVED,
    ACCOUNT_INVITED,
    ACCOUNT_REGISTERED,
    CUSTOMER_ERASED,
    EMAIL_CHANGE_REQUESTED,
    EMAIL_CHANGED,
    FULFILLMENT_UPDATED,
    ORDER_ABANDONED,
    ORDER_CANCELED,
    ORDER_PLACED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_REQUESTED,
    PAYMENT_STATUS_CHANGED,
    STORE_SETTINGS_CHANGED,
)
from messaging.envelope import Envelope
from messaging.health import HealthEndpoints
from messaging.logs import LogContext
from messaging.rpc import rpc
from services.notifications import delivery_log, email_kinds, email_settings, sending
from services.notifications.dependencies import MailerProvider, notifications_database


class NotificationsService(HealthEndpoints):
    name = "notifications"

    db = notifications_database()
    mail = MailerProvider()
    log_context = LogContext()

    # events that send an email (email_kinds says which, to whom) ---------------------------
    # The checkout-rate event: confirmations wait up to 30 ms for company (logging a batch
    # costs about what logging one does), well inside the 250 ms the shopper may wait.
    @consume_events("orders", ORDER_PLACED, linger=0.03)
    def handle_order_placed(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("orders", PAYMENT_STATUS_CHANGED)
    def handle_payment_status_changed(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("orders", FULFILLMENT_UPDATED)
    def handle_fulfillment_updated(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("orders", ORDER_CANCELED)
    def handle_order_canceled(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("orders", ORDER_ABANDONED)
    def handle_order_abandoned(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", ACCOUNT_REGISTERED)
    def handle_account_registered(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", PASSWORD_RESET_REQUESTED)
    def handle_password_reset_requested(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", PASSWORD_CHANGED)
    def handle_password_changed(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", ACCOUNT_INVITED)
    def handle_account_invited(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", ACCOUNT_APPROVED)
    def handle_account_approved(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", EMAIL_CHANGE_REQUESTED)
    def handle_email_change_requested(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @consume_events("identity", EMAIL_CHANGED)
    def handle_email_changed(self, envelopes: list[Envelope]) -> None:
        sending.record_events(self.db, self.mail, envelopes)

    @timer(interval=2)
    def send_due_deliveries(self) -> None:
        sending.send_due(self.db, self.mail)

    # other events ------------------------------------------------------------------------
    @consume_event("identity", STORE_SETTINGS_CHANGED)
    def handle_store_settings_changed(self, envelope: Envelope) -> None:
        email_settings.keep_reply_to(self.db, envelope)

    @consume_event("customers", CUSTOMER_ERASED)
    def handle_customer_erased(self, envelope: Envelope) -> None:
        delivery_log.forget_customer(self.db, envelope)

    # the delivery log --------------------------------------------------------------------
    @rpc
    def list_deliveries(self, query: dict[str, Any]) -> dict[str, Any]:
        return delivery_log.list_deliveries(self.db, query)

    @rpc
    def resend(self, delivery_id: str, actor: str) -> dict[str, Any]:
        return delivery_log.resend(self.db, self.mail, delivery_id, actor)

    @rpc
    def export_deliveries(self, email: str) -> list[dict[str, Any]]:
        return delivery_log.export_deliveries(self.db, email)

    # the merchant's choices --------------------------------------------------------------
    @rpc
    def get_settings(self) -> dict[str, bool]:
        return email_settings.get_settings(self.db)

    @rpc
    def update_settings(self, request: dict[str, Any]) -> dict[str, bool]:
        return email_settings.update_settings(self.db, request)

    @rpc
    def list_email_kinds(self) -> list[dict[str, Any]]:
        """Every email the store sends: its kind, the event it answers, switchable or not."""
        return email_kinds.catalogue()
