"""The delivery log as merchants and customers see it: listing, resending, a customer's
export, and forgetting an erased customer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select, update

from messaging.contracts import erased_email, is_erased_email, load_payload
from messaging.contracts.notifications import (
    DeliveryQuerySchema,
    DeliverySchema,
    NotificationsError,
)
from messaging.database import Database
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.keys import unseal
from messaging.logs import mask_email
from messaging.outbox import forget_in_outbox
from messaging.paging import after_marker, page_marker
from services.notifications import sending
from services.notifications.dependencies import MailerProvider
from services.notifications.models import Delivery

log = logging.getLogger(__name__)


def list_deliveries(db: Database, query: dict[str, Any]) -> dict[str, Any]:
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
    with db.transaction() as session:
        rows = session.scalars(statement.order_by(Delivery.created_at.desc(),
                                                  Delivery.id.desc())
                               .limit(data["limit"] + 1)).all()
        page = rows[:data["limit"]]
        more = len(rows) > data["limit"]
        return {"items": DeliverySchema(many=True).dump(page),
                "next_before": (page_marker(page[-1].created_at, page[-1].id)
                                if more else None)}


def resend(db: Database, mail: MailerProvider, delivery_id: str, actor: str
           ) -> dict[str, Any]:
    """Send a logged email again: a new delivery of its own, logged like any other."""
    now = utcnow()
    with db.transaction() as session:
        original = session.get(Delivery, _delivery_uuid(delivery_id))
        if original is None:
            raise ServiceError(NotificationsError.DELIVERY_NOT_FOUND, "No such email.", 404)
        if is_erased_email(original.recipient):
            raise ServiceError(NotificationsError.RECIPIENT_ERASED,
                               "The recipient's data was erased: nothing to resend.", 409)
        copy = Delivery(
            # a new send, not the event again: an id of its own (fits the column)
            id=uuid.uuid4(), event_id=str(uuid.uuid4()), kind=original.kind,
            recipient=original.recipient, locale=original.locale, status="sending",
            attempts=1, context=dict(original.context), next_attempt_at=now,
            locked_until=now + mail.send_lease,
        )
        session.add(copy)
        outgoing = sending.Outgoing(copy.id, copy.kind, copy.recipient, copy.locale,
                                    dict(copy.context), 1, sending.reply_to(session))
    log.info("email resent", extra={"kind": outgoing.kind, "actor": actor,
                                    "recipient": mask_email(outgoing.recipient)})
    sending.send(db, mail, outgoing)
    with db.transaction() as session:
        return DeliverySchema().dump(session.get(Delivery, outgoing.delivery_id))


def export_deliveries(db: Database, email: str) -> list[dict[str, Any]]:
    """The emails sent to one address, for a customer's data export."""
    with db.transaction() as session:
        rows = session.scalars(select(Delivery)
                               .where(func.lower(Delivery.recipient) == email.strip().lower())
                               .order_by(Delivery.created_at)).all()
        return [{"kind": row.kind, "status": row.status, "locale": row.locale,
                 "created_at": row.created_at.isoformat(),
                 "sent_at": row.sent_at and row.sent_at.isoformat()} for row in rows]


def forget_customer(db: Database, envelope: Envelope) -> None:
    """Forget the person in the delivery log: the rows stay (what kind, when, how it went),
    without address, names or links. An email not yet sent is not sent."""
    erased = load_payload(envelope)
    email = unseal(erased["email_sealed"]).strip().lower()
    with db.transaction() as session:
        if db.already_processed(session, envelope):
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


def _delivery_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(NotificationsError.DELIVERY_NOT_FOUND, "No such email.", 404) from None
