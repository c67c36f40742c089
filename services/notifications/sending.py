"""Sending an event's email once: the delivery is logged with the event's processed mark in
one transaction, then sent outside any transaction; failures are retried by the sweep,
bounces remembered."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from eventlet.greenpool import GreenPool
from eventlet.semaphore import Semaphore
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from messaging.contracts import is_erased_email, normalised_payload
from messaging.database import Database, locked_row
from messaging.envelope import Envelope, utcnow
from messaging.logs import correlated, mask_email
from messaging.metrics import EMAILS
from services.notifications import domain, email_kinds
from services.notifications.dependencies import MailerProvider, build_message, render_email
from services.notifications.models import (
    BouncingAddress,
    Delivery,
    NotificationSetting,
    SenderProfile,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Outgoing:
    """One email as the sender needs it, read from the log inside a transaction."""

    delivery_id: Any
    kind: str
    recipient: str
    locale: str
    context: dict[str, Any]
    attempts: int
    reply_to: str | None
    correlation_id: str | None = None  # the request behind the event, for the log lines


@dataclass(frozen=True)
class Wanted:
    """An email an event asks for, before it is logged."""

    envelope: Envelope
    kind: email_kinds.EmailKind
    recipient: str
    locale: str
    context: dict[str, Any]


def record_events(db: Database, mail: MailerProvider, envelopes: list[Envelope]) -> None:
    """The emails a batch of events asks for (email_kinds), logged in one transaction, then
    each sent and its outcome logged."""
    wanted = []
    for envelope in envelopes:
        payload = normalised_payload(envelope)  # checked against its contract
        kind = email_kinds.kind_for(envelope.event_type, payload)
        if kind is not None:
            wanted.append(Wanted(envelope, kind, kind.recipient(payload), payload["locale"],
                                 kind.context(payload)))
    outgoing = _log_deliveries(db, mail, wanted)
    # A batch's emails go side by side, one per kept SMTP connection: one after the other,
    # a batch would wait on every SMTP conversation's round trips in turn.
    senders = GreenPool(max(1, min(len(outgoing), mail.mailer.pool_size)))
    outcomes = OutcomeLog(db)
    for _ in senders.imap(partial(_send_correlated, db, mail, outcomes), outgoing):
        pass


def _send_correlated(db: Database, mail: MailerProvider, outcomes: OutcomeLog,
                     outgoing: Outgoing) -> None:
    with correlated(outgoing.correlation_id):  # its event's request, in its own green thread
        send(db, mail, outgoing, outcomes)


def _log_deliveries(db: Database, mail: MailerProvider, wanted: list[Wanted]
                    ) -> list[Outgoing]:
    """Log the deliveries with the events' processed marks (one transaction): each born
    claimed by this worker (attempt 1), so no second transaction claims it. If the worker
    dies, the lease runs out and the sweep sends it. Returns those to send now: not done
    before, and not to be skipped (a skipped one is logged with why, for the merchant)."""
    if not wanted:
        return []
    now = utcnow()
    outgoing, rows = [], []
    with db.transaction() as session:
        fresh = {envelope.event_id for envelope in
                 db.first_deliveries(session, [item.envelope for item in wanted])}
        todo = []
        for item in wanted:  # the first of each fresh event (it may come twice in a batch)
            if item.envelope.event_id in fresh:
                fresh.discard(item.envelope.event_id)
                todo.append(item)
        facts = _sending_facts(session, {item.kind.name for item in todo},
                               {item.recipient for item in todo})
        for item in todo:
            delivery_id = domain.delivery_id(item.envelope.event_id, item.kind.name,
                                             item.recipient)
            skipped = _skip_reason(item.kind, item.recipient, facts)
            rows.append({
                "id": delivery_id, "event_id": item.envelope.event_id,
                "kind": item.kind.name, "recipient": item.recipient, "locale": item.locale,
                "status": "skipped" if skipped else "sending", "attempts": 0 if skipped else 1,
                "context": {} if skipped else item.context, "created_at": now,
                "next_attempt_at": now, "last_error": skipped or None,
                "locked_until": None if skipped else now + mail.send_lease})
            if not skipped:
                outgoing.append(Outgoing(delivery_id, item.kind.name, item.recipient,
                                         item.locale, item.context, 1, facts.reply_to,
                                         item.envelope.correlation_id))
        if rows:  # one Core INSERT: the ORM's unit of work cost 9% of the service (profiled)
            session.execute(insert(Delivery.__table__), rows)
    return outgoing


@dataclass(frozen=True)
class SendingFacts:
    """What decides whether and how a batch's emails go, read in one round trip."""

    bouncing: frozenset[str]  # of the batch's recipients
    enabled: dict[str, bool | None]  # the merchant's switch per kind; None: never touched
    reply_to: str | None


def _sending_facts(session: Session, kinds: set[str], recipients: set[str]) -> SendingFacts:
    if not kinds:
        return SendingFacts(frozenset(), {}, None)
    kinds_, recipients_ = sorted(kinds), sorted(recipients)
    row = session.execute(_facts_statement(len(recipients_), len(kinds_)), {
        **{f"recipient_{i}": recipient for i, recipient in enumerate(recipients_)},
        **{f"kind_{i}": kind for i, kind in enumerate(kinds_)}}).one()
    return SendingFacts(
        frozenset(recipient for i, recipient in enumerate(recipients_)
                  if row._mapping[f"bouncing_{i}"]),
        {kind: row._mapping[f"enabled_{i}"] for i, kind in enumerate(kinds_)},
        row.reply_to)


@lru_cache(maxsize=64)
def _facts_statement(recipients: int, kinds: int) -> Any:
    """One labelled subquery per kind and recipient (a batch has a handful): one round
    trip. Built once per shape: building it per batch was a quarter of logging a batch."""
    bouncing, settings = BouncingAddress.__table__, NotificationSetting.__table__
    profiles = SenderProfile.__table__
    return select(
        *(select(bouncing.c.email).where(bouncing.c.email == bindparam(f"recipient_{i}"))
          .exists().label(f"bouncing_{i}") for i in range(recipients)),
        *(select(settings.c.enabled).where(settings.c.kind == bindparam(f"kind_{i}"))
          .scalar_subquery().label(f"enabled_{i}") for i in range(kinds)),
        select(profiles.c.reply_to).where(profiles.c.id == 1)
        .scalar_subquery().label("reply_to"))


def _skip_reason(kind: email_kinds.EmailKind, recipient: str, facts: SendingFacts
                 ) -> str | None:
    if is_erased_email(recipient):  # an erased customer's order: no one to tell
        return "recipient erased"
    if not kind.sent_to_bouncing and recipient in facts.bouncing:
        return "recipient bouncing"
    if kind.switchable and facts.enabled.get(kind.name) is False:
        return "switched off"
    return None


def send_due(db: Database, mail: MailerProvider) -> None:
    """Retry sweep: pending deliveries that are due, and claims a crashed sender left."""
    now = utcnow()
    with db.transaction() as session:
        ids = session.scalars(
            select(Delivery.id).where(_claimable(now))
            .order_by(Delivery.next_attempt_at).limit(50)).all()
    for delivery_id in ids:
        outgoing = _claim(db, mail, delivery_id)
        if outgoing is not None:
            send(db, mail, outgoing)


def _claimable(now: Any) -> Any:
    return or_((Delivery.status == "pending") & (Delivery.next_attempt_at <= now),
               (Delivery.status == "sending") & (Delivery.locked_until < now))


def _claim(db: Database, mail: MailerProvider, delivery_id: Any) -> Outgoing | None:
    """Claim it (one sender at a time, across replicas) in a short transaction; the SMTP
    conversation happens outside any transaction."""
    now = utcnow()
    with db.transaction() as session:
        claimed = session.execute(
            update(Delivery).where(Delivery.id == delivery_id, _claimable(now))
            .values(status="sending", locked_until=now + mail.send_lease,
                    attempts=Delivery.attempts + 1)
            .execution_options(synchronize_session=False)).rowcount
        if not claimed:
            return None
        delivery = session.get(Delivery, delivery_id)
        return Outgoing(delivery_id, delivery.kind, delivery.recipient, delivery.locale,
                        dict(delivery.context), delivery.attempts, reply_to(session))


def send(db: Database, mail: MailerProvider, outgoing: Outgoing,
         outcomes: OutcomeLog | None = None) -> None:
    """Render and send, outside any transaction (the callers read what it needs from the
    database in theirs: a database hiccup here would fail the email for good); its outcome
    logged through ``outcomes`` (a batch's senders share one), before this returns."""
    outcomes = outcomes or OutcomeLog(db)
    kind, recipient = outgoing.kind, outgoing.recipient
    try:
        context = email_kinds.BY_NAME[kind].template_context(mail.links, outgoing.context)
        subject, text, html = render_email(kind, outgoing.locale, context)
        message = build_message(
            delivery_id=outgoing.delivery_id, sender=mail.sender, recipient=recipient,
            subject=subject, text=text, html=html, locale=outgoing.locale,
            reply_to=outgoing.reply_to)
        mail.mailer.send(message)
    except domain.TransientMailError as exc:
        retry_at = domain.next_attempt(outgoing.attempts, utcnow(),
                                       mail.config.mail_retry_delays_s)
        outcomes.record(outgoing.delivery_id, status="pending" if retry_at else "failed",
                        error=str(exc), next_attempt_at=retry_at)
        EMAILS.labels(kind, "deferred" if retry_at else "failed").inc()
        log.warning("email deferred", extra={"kind": kind, "attempt": outgoing.attempts,
                                             "recipient": mask_email(recipient)})
        return
    except domain.RecipientBounced as exc:
        outcomes.record(outgoing.delivery_id, status="bounced", error=str(exc))
        _mark_bouncing(db, recipient, str(exc))
        EMAILS.labels(kind, "bounced").inc()
        log.warning("email bounced", extra={"kind": kind, "recipient": mask_email(recipient)})
        return
    except Exception as exc:  # permanent SMTP refusal, or a template bug: no retry
        outcomes.record(outgoing.delivery_id, status="failed",
                        error=f"{type(exc).__name__}: {exc}")
        EMAILS.labels(kind, "failed").inc()
        log.error("email failed", extra={"kind": kind, "recipient": mask_email(recipient)})
        return
    outcomes.record(outgoing.delivery_id, status="sent")
    EMAILS.labels(kind, "sent").inc()
    log.info("email sent", extra={"kind": kind, "recipient": mask_email(recipient)})


def _mark_bouncing(db: Database, recipient: str, error: str) -> None:
    now = utcnow()
    with db.transaction() as session:
        row = locked_row(session, BouncingAddress, recipient, email=recipient, bounces=0,
                         first_bounced_at=now, last_bounced_at=now)
        row.bounces += 1
        row.last_bounced_at, row.last_error = now, error[:300]


class OutcomeLog:
    """Email outcomes, logged by group commit. The first of a batch's senders to finish
    writes its outcome at once; those that finish while a write is on the wire wait for it,
    and the next of them writes all theirs together (every "sent" in one UPDATE). So an
    outcome waits at most for one write before its own, never for the batch's slowest
    SMTP conversation: a crash re-sends no more than it did with one write per email, and
    a batch of four makes two writes, not four. Each ``record`` returns once its outcome is
    committed, or raises (as the single write did): the email then stays claimed until its
    lease runs out and the sweep decides again."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ready: list[tuple[Any, dict[str, Any]]] = []  # waiting for the next write
        self._writing = Semaphore()

    def record(self, delivery_id: Any, status: str, error: str | None = None,
               next_attempt_at: Any = None) -> None:
        values: dict[str, Any] = {"status": status, "locked_until": None,
                                  "last_error": error[:500] if error else None}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        self._ready.append((delivery_id, values))
        with self._writing:
            outcomes, self._ready = self._ready, []
            if not outcomes:
                return  # a sender before us wrote ours with its own
            try:
                _write_outcomes(self.db, outcomes)
            except BaseException:
                self._ready[:0] = outcomes  # not written: whoever waits next tries them
                raise


def _write_outcomes(db: Database, outcomes: list[tuple[Any, dict[str, Any]]]) -> None:
    """Every "sent" in one UPDATE; the rest (retries, failures: rare) one each. Each
    statement is atomic on its own: no transaction around them (``execute_alone``)."""
    sent = [delivery_id for delivery_id, values in outcomes if values["status"] == "sent"]
    if sent:
        db.execute_alone(_SENT, {"delivery_ids": sent, "sent_at": utcnow()})
    for delivery_id, values in outcomes:
        if values["status"] != "sent":
            db.execute_alone(_outcome_statement(tuple(values)), {
                "delivery_id": delivery_id, **{f"new_{k}": v for k, v in values.items()}})


_DELIVERIES = Delivery.__table__
# Built once: every email runs one of these (built per email it cost 0.15-0.2 ms more an
# email, bench.handlers).
_SENT = (update(_DELIVERIES)
         .where(_DELIVERIES.c.id.in_(bindparam("delivery_ids", expanding=True)))
         .values(status="sent", locked_until=None, last_error=None,
                 sent_at=bindparam("sent_at")))


@lru_cache(maxsize=16)
def _outcome_statement(columns: tuple[str, ...]) -> Any:
    """An outcome other than "sent", one Core UPDATE built once per set of columns."""
    return (update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("delivery_id"))
            .values({column: bindparam(f"new_{column}") for column in columns}))


def reply_to(session: Session) -> str | None:
    """The store's Reply-To (kept from identity's store settings)."""
    profile = session.get(SenderProfile, 1)
    return profile.reply_to if profile else None
