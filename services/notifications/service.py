"""Notifications service: turns events into emails, each delivered once and logged."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import timedelta
from typing import Any

from nameko.timer import timer
from sqlalchemy import func, or_, select, update

from messaging.consumer import consume_event
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
    erased_email,
    is_erased_email,
    load_payload,
    normalised_payload,
)
from messaging.database import locked_row
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.health import HealthEndpoints
from messaging.keys import unseal
from messaging.logs import LogContext, mask_email
from messaging.metrics import EMAILS
from messaging.outbox import forget_in_outbox
from messaging.paging import after_marker, page_marker
from messaging.rpc import rpc
from services.notifications import domain
from services.notifications.dependencies import (
    MailerProvider,
    build_message,
    notifications_database,
    render_email,
)
from services.notifications.models import (
    BouncingAddress,
    Delivery,
    NotificationSetting,
    SenderProfile,
)
from services.notifications.schemas import (
    DeliveryQuerySchema,
    DeliverySchema,
    NotificationSettingsSchema,
)

log = logging.getLogger(__name__)

# A crashed sender's claim expires after this, and the sweep sends the email. Longer than any
# SMTP conversation (the mailer's timeouts), or a slow send could go out twice.
SEND_LEASE = timedelta(seconds=float(os.environ.get("SEND_LEASE_SECONDS", "120")))


class NotificationsService(HealthEndpoints):
    name = "notifications"

    db = notifications_database()
    mail = MailerProvider()
    log_context = LogContext()

    @consume_event("orders", ORDER_PLACED)
    def handle_order_placed(self, envelope: Envelope) -> None:
        # checked against its contract (a bad payload is dead-lettered at once), with every
        # optional field present for the templates
        order = normalised_payload(envelope)
        if not order.get("notify_customer", True):
            return
        kind = domain.ORDER_PAYMENT_LINK if order.get("payment_link") else \
            domain.ORDER_CONFIRMATION
        self._record(envelope, kind, order["email"], order["locale"], {"order": order})

    @consume_event("identity", ACCOUNT_REGISTERED)
    def handle_account_registered(self, envelope: Envelope) -> None:
        self._account_email(envelope, domain.WELCOME)

    @consume_event("identity", PASSWORD_RESET_REQUESTED)
    def handle_password_reset_requested(self, envelope: Envelope) -> None:
        self._account_email(envelope, domain.PASSWORD_RESET)

    @consume_event("identity", PASSWORD_CHANGED)
    def handle_password_changed(self, envelope: Envelope) -> None:
        self._account_email(envelope, domain.PASSWORD_CHANGED)

    @consume_event("identity", ACCOUNT_INVITED)
    def handle_account_invited(self, envelope: Envelope) -> None:
        self._account_email(envelope, domain.INVITATION)

    @consume_event("identity", ACCOUNT_APPROVED)
    def handle_account_approved(self, envelope: Envelope) -> None:
        self._account_email(envelope, domain.ACCOUNT_APPROVED)

    @consume_event("identity", EMAIL_CHANGE_REQUESTED)
    def handle_email_change_requested(self, envelope: Envelope) -> None:
        # A taken address gets a notice, never a link: its owner learns someone tried.
        kind = domain.EMAIL_ADDRESS_IN_USE if envelope.payload.get("address_taken") \
            else domain.EMAIL_CHANGE_CONFIRM
        self._account_email(envelope, kind, to=envelope.payload["new_email"])

    @consume_event("identity", EMAIL_CHANGED)
    def handle_email_changed(self, envelope: Envelope) -> None:
        if not envelope.payload.get("reverted"):  # the old address may undo the change
            self._account_email(envelope, domain.EMAIL_CHANGE_NOTICE,
                                to=envelope.payload["old_email"])

    @consume_event("identity", STORE_SETTINGS_CHANGED)
    def handle_store_settings_changed(self, envelope: Envelope) -> None:
        """Keep the store's Reply-To: its emails carry it."""
        changed = load_payload(envelope)["changed"]
        if "reply_to" not in changed:
            return
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            profile = session.get(SenderProfile, 1) or SenderProfile(id=1)
            profile.reply_to = changed["reply_to"][1]
            session.add(profile)

    @consume_event("orders", PAYMENT_STATUS_CHANGED)
    def handle_payment_status_changed(self, envelope: Envelope) -> None:
        kind = {"paid": domain.PAYMENT_RECEIVED, "refunded": domain.PAYMENT_REFUNDED,
                "partially_refunded": domain.PAYMENT_REFUNDED}.get(envelope.payload["to"])
        if kind:
            self._order_email(envelope, kind)

    @consume_event("orders", FULFILLMENT_UPDATED)
    def handle_fulfillment_updated(self, envelope: Envelope) -> None:
        kind = {"in_transit": domain.ORDER_SHIPPED,
                "delivered": domain.ORDER_DELIVERED}.get(envelope.payload["to"])
        if kind:
            self._order_email(envelope, kind)

    @consume_event("orders", ORDER_CANCELED)
    def handle_order_canceled(self, envelope: Envelope) -> None:
        self._order_email(envelope, domain.ORDER_CANCELED)

    @consume_event("orders", ORDER_ABANDONED)
    def handle_order_abandoned(self, envelope: Envelope) -> None:
        self._order_email(envelope, domain.ORDER_RECOVERY)

    @timer(interval=2)
    def send_due_deliveries(self) -> None:
        """Retry sweep: pending deliveries that are due, and claims a crashed sender left."""
        now = utcnow()
        with self.db.transaction() as session:
            ids = session.scalars(
                select(Delivery.id)
                .where(or_(
                    (Delivery.status == "pending") & (Delivery.next_attempt_at <= now),
                    (Delivery.status == "sending") & (Delivery.locked_until < now),
                ))
                .order_by(Delivery.next_attempt_at)
                .limit(50)
            ).all()
        for delivery_id in ids:
            self._deliver(delivery_id)

    @rpc
    def list_deliveries(self, query: dict[str, Any]) -> dict[str, Any]:
        """The delivery log, newest first: what went to whom, when, how it went."""
        data = load_or_raise(DeliveryQuerySchema(), query)
        statement = select(Delivery)
        for field in ("status", "kind"):
            if field in data:
                statement = statement.where(getattr(Delivery, field) == data[field])
        if "recipient" in data:
            statement = statement.where(Delivery.recipient == data["recipient"].strip().lower())
        if "before" in data:
            statement = statement.where(after_marker(Delivery.created_at, Delivery.id,
                                                     data["before"]))
        with self.db.transaction() as session:
            rows = session.scalars(statement.order_by(Delivery.created_at.desc(),
                                                      Delivery.id.desc())
                                   .limit(data["limit"] + 1)).all()
            page = rows[:data["limit"]]
            more = len(rows) > data["limit"]
            return {"items": DeliverySchema(many=True).dump(page),
                    "next_before": (page_marker(page[-1].created_at, page[-1].id)
                                    if more else None)}

    @rpc
    def resend(self, delivery_id: str, actor: str) -> dict[str, Any]:
        """Send a logged email again: a new delivery of its own, logged like any other."""
        now = utcnow()
        with self.db.transaction() as session:
            original = session.get(Delivery, _uuid(delivery_id))
            if original is None:
                raise ServiceError("delivery_not_found", "No such email.", 404)
            if is_erased_email(original.recipient):
                raise ServiceError("recipient_erased",
                                   "The recipient's data was erased: nothing to resend.", 409)
            copy = Delivery(
                # a new send, not the event again: an id of its own (fits the column)
                id=uuid.uuid4(), event_id=str(uuid.uuid4()), kind=original.kind,
                recipient=original.recipient, locale=original.locale, status="sending",
                attempts=1, context=dict(original.context), next_attempt_at=now,
                locked_until=now + SEND_LEASE,
            )
            session.add(copy)
            fields_ = (copy.id, copy.kind, copy.recipient, copy.locale, dict(copy.context))
            reply_to = _reply_to(session)
        log.info("email resent", extra={"kind": fields_[1], "actor": actor,
                                        "recipient": mask_email(fields_[2])})
        self._send(*fields_, attempts=1, reply_to=reply_to)
        with self.db.transaction() as session:
            return DeliverySchema().dump(session.get(Delivery, fields_[0]))

    @consume_event("customers", CUSTOMER_ERASED)
    def handle_customer_erased(self, envelope: Envelope) -> None:
        """Forget the person in the delivery log: the rows stay (what kind, when, how it
        went), without address, names or links. An email not yet sent is not sent."""
        erased = load_payload(envelope)
        email = unseal(erased["email_sealed"]).strip().lower()
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            placeholder = erased_email(erased["customer_id"])
            # last_error too: a mail server's refusal often quotes the address.
            session.execute(update(Delivery).where(func.lower(Delivery.recipient) == email)
                            .values(recipient=placeholder, context={}, last_error=None)
                            .execution_options(synchronize_session=False))
            session.execute(update(Delivery)
                            .where(Delivery.recipient == placeholder,
                                   Delivery.status.in_(("pending", "sending")))
                            .values(status="failed", last_error="recipient erased",
                                    locked_until=None)
                            .execution_options(synchronize_session=False))
            forget_in_outbox(session, [email])

    @rpc
    def export_deliveries(self, email: str) -> list[dict[str, Any]]:
        """The emails sent to one address, for a customer's data export."""
        with self.db.transaction() as session:
            rows = session.scalars(select(Delivery)
                                   .where(func.lower(Delivery.recipient)
                                          == email.strip().lower())
                                   .order_by(Delivery.created_at)).all()
            return [{"kind": row.kind, "status": row.status, "locale": row.locale,
                     "created_at": row.created_at.isoformat(),
                     "sent_at": row.sent_at and row.sent_at.isoformat()} for row in rows]

    @rpc
    def get_settings(self) -> dict[str, bool]:
        with self.db.transaction() as session:
            stored = {row.kind: row.enabled for row in session.scalars(
                select(NotificationSetting))}
        return {kind: stored.get(kind, True) for kind in domain.SWITCHABLE}

    @rpc
    def update_settings(self, request: dict[str, Any]) -> dict[str, bool]:
        data = load_or_raise(NotificationSettingsSchema(), request)
        with self.db.transaction() as session:
            for kind, enabled in data.items():
                row = session.get(NotificationSetting, kind, with_for_update=True)
                if row is None:
                    session.add(NotificationSetting(kind=kind, enabled=enabled))
                else:
                    row.enabled = enabled
        return self.get_settings()

    # helpers ----------------------------------------------------------------------------
    def _order_email(self, envelope: Envelope, kind: str) -> None:
        change = normalised_payload(envelope)
        if change.get("notify_customer"):
            self._record(envelope, kind, change["email"], change["locale"], change)

    def _account_email(self, envelope: Envelope, kind: str, to: str | None = None) -> None:
        account = normalised_payload(envelope)
        self._record(envelope, kind, to or account["email"], account["locale"], account)

    def _record(self, envelope: Envelope, kind: str, recipient: str, locale: str,
                context: dict[str, Any]) -> None:
        """Log the delivery with the event's processed mark (one transaction), then send."""
        delivery_id = domain.delivery_id(envelope.event_id, kind, recipient)
        now = utcnow()
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            skipped = None
            if is_erased_email(recipient):  # an erased customer's order: no one to tell
                skipped = "recipient erased"
            elif kind not in domain.SENT_TO_BOUNCING and session.get(BouncingAddress,
                                                                    recipient):
                skipped = "recipient bouncing"
            elif kind not in domain.ALWAYS_SENT:
                setting = session.get(NotificationSetting, kind)
                if setting is not None and not setting.enabled:
                    skipped = "switched off"
            if skipped:
                # Logged, so the merchant sees why it did not go.
                session.add(Delivery(
                    id=delivery_id, event_id=envelope.event_id, kind=kind,
                    recipient=recipient, locale=locale, status="skipped", attempts=0,
                    context={}, next_attempt_at=now, last_error=skipped))
                return
            # Born claimed by this worker (attempt 1): no second transaction to claim it. If
            # the worker dies, the lease runs out and the sweep sends it.
            session.add(Delivery(
                id=delivery_id, event_id=envelope.event_id, kind=kind, recipient=recipient,
                locale=locale, status="sending", attempts=1, context=context,
                next_attempt_at=now, locked_until=now + SEND_LEASE,
            ))
            reply_to = _reply_to(session)
        self._send(delivery_id, kind, recipient, locale, context, attempts=1,
                   reply_to=reply_to)

    def _deliver(self, delivery_id: Any) -> None:
        now = utcnow()
        # Claim it (one sender at a time, across replicas) in a short transaction; the SMTP
        # conversation happens outside any transaction.
        with self.db.transaction() as session:
            claimed = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, or_(
                    (Delivery.status == "pending") & (Delivery.next_attempt_at <= now),
                    (Delivery.status == "sending") & (Delivery.locked_until < now),
                ))
                .values(status="sending", locked_until=now + SEND_LEASE,
                        attempts=Delivery.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not claimed:
                return
            delivery = session.get(Delivery, delivery_id)
            kind, recipient, locale = delivery.kind, delivery.recipient, delivery.locale
            context, attempts = dict(delivery.context), delivery.attempts
            reply_to = _reply_to(session)
        self._send(delivery_id, kind, recipient, locale, context, attempts, reply_to)

    def _send(self, delivery_id: Any, kind: str, recipient: str, locale: str,
              context: dict[str, Any], attempts: int, reply_to: str | None) -> None:
        """Render and send, outside any transaction (the callers read what it needs from the
        database in theirs: a database hiccup here would fail the email for good)."""
        try:
            subject, text, html = render_email(kind, locale, self._links(kind, context))
            message = build_message(
                delivery_id=delivery_id, sender=self.mail.sender, recipient=recipient,
                subject=subject, text=text, html=html, locale=locale, reply_to=reply_to,
            )
            self.mail.mailer.send(message)
        except domain.TransientMailError as exc:
            retry_at = domain.next_attempt(attempts, utcnow())
            self._finish(delivery_id, status="pending" if retry_at else "failed",
                         error=str(exc), next_attempt_at=retry_at)
            EMAILS.labels(kind, "deferred" if retry_at else "failed").inc()
            log.warning("email deferred", extra={"kind": kind, "attempt": attempts,
                                                 "recipient": mask_email(recipient)})
            return
        except domain.RecipientBounced as exc:
            self._finish(delivery_id, status="bounced", error=str(exc))
            self._mark_bouncing(recipient, str(exc))
            EMAILS.labels(kind, "bounced").inc()
            log.warning("email bounced", extra={"kind": kind,
                                                "recipient": mask_email(recipient)})
            return
        except Exception as exc:  # permanent SMTP refusal, or a template bug: no retry
            self._finish(delivery_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            EMAILS.labels(kind, "failed").inc()
            log.error("email failed", extra={"kind": kind, "recipient": mask_email(recipient)})
            return
        self._finish(delivery_id, status="sent")
        EMAILS.labels(kind, "sent").inc()
        log.info("email sent", extra={"kind": kind, "recipient": mask_email(recipient)})

    def _mark_bouncing(self, recipient: str, error: str) -> None:
        now = utcnow()
        with self.db.transaction() as session:
            row = locked_row(session, BouncingAddress, recipient, email=recipient, bounces=0,
                             first_bounced_at=now, last_bounced_at=now)
            row.bounces += 1
            row.last_bounced_at, row.last_error = now, error[:300]

    def _finish(self, delivery_id: Any, status: str, error: str | None = None,
                next_attempt_at: Any = None) -> None:
        values: dict[str, Any] = {"status": status, "locked_until": None,
                                  "last_error": error[:500] if error else None}
        if status == "sent":
            values["sent_at"] = utcnow()
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        with self.db.transaction() as session:
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values)
                            .execution_options(synchronize_session=False))

    def _links(self, kind: str, context: dict[str, Any]) -> dict[str, Any]:
        """Links for the template. Tokens stay sealed in the delivery log and are opened only
        here, for the message being sent."""
        base = self.mail.storefront_url.rstrip("/")
        if kind in (domain.ORDER_CONFIRMATION, domain.ORDER_PAYMENT_LINK):
            order = context["order"]
            sealed = order.get("access_token_sealed")
            token = unseal(sealed) if sealed else None
            order_url = f"{base}/orders/{order['order_id']}" + (f"?token={token}" if token else "")
            account_url = (f"{base}/create-account?order={order['order_id']}&token={token}"
                           if token and order.get("offer_account") else None)
            login_url = f"{base}/login" if order.get("account_exists") else None
            # The order page starts the payment (POST /orders/{id}/payment) when asked to.
            pay_url = order_url + ("&" if token else "?") + "pay=1"
            return {**context, "order_url": order_url, "account_url": account_url,
                    "pay_url": pay_url, "login_url": login_url}
        if kind == domain.ORDER_RECOVERY:
            token = unseal(context["recovery_token_sealed"])
            return {**context, "recover_url": f"{base}/recover/{token}"}
        context = {**context, "store_name": context.get("store_name") or "Clientela"}
        if kind == domain.WELCOME:
            sealed = context.get("verify_token_sealed")  # none: the email is already proven
            verify_url = f"{base}/verify-email?token={unseal(sealed)}" if sealed else None
            return {**context, "verify_url": verify_url}
        if kind == domain.PASSWORD_RESET:
            token = unseal(context["token_sealed"])
            return {**context, "reset_url": f"{base}/reset-password?token={token}"}
        if kind == domain.PASSWORD_CHANGED:
            return {**context, "forgot_url": f"{base}/forgot-password"}
        if kind == domain.INVITATION:
            token = unseal(context["token_sealed"])
            return {**context, "activate_url": f"{base}/activate?token={token}"}
        if kind == domain.ACCOUNT_APPROVED:
            return {**context, "login_url": f"{base}/login"}
        if kind == domain.EMAIL_ADDRESS_IN_USE:
            return {**context, "login_url": f"{base}/login"}
        if kind == domain.EMAIL_CHANGE_CONFIRM:
            token = unseal(context["token_sealed"])
            return {**context, "confirm_url": f"{base}/confirm-email?token={token}"}
        if kind == domain.EMAIL_CHANGE_NOTICE:
            token = unseal(context["revert_token_sealed"])
            return {**context, "revert_url": f"{base}/revert-email?token={token}"}
        if kind in (domain.PAYMENT_RECEIVED, domain.PAYMENT_REFUNDED, domain.ORDER_SHIPPED,
                    domain.ORDER_DELIVERED, domain.ORDER_CANCELED):
            # A guest's order opens with its token; an account's in the account.
            sealed = context.get("access_token_sealed")
            query = f"?token={unseal(sealed)}" if sealed else ""
            return {**context, "order_url": f"{base}/orders/{context['order_id']}{query}"}
        return context


def _reply_to(session: Any) -> str | None:
    profile = session.get(SenderProfile, 1)
    return profile.reply_to if profile else None


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError("delivery_not_found", "No such email.", 404) from None
