"""The transactional outbox: tables every service carries, and ``emit``."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    text,
)
from sqlalchemy.orm import Session

from messaging.contracts import build_envelope
from messaging.database import UtcDateTime
from messaging.envelope import Envelope, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the ``outbox`` and ``processed_events`` tables to a service's metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", _BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("next_attempt_at", UtcDateTime(), nullable=False),
        Column("published_at", UtcDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", String(500), nullable=True),
    )
    # The relay only ever looks for unpublished rows: keep that index small however long the
    # published history grows.
    pending = text("published_at IS NULL")
    Index("ix_outbox_pending", outbox.c.id, postgresql_where=pending, sqlite_where=pending)
    processed = Table(
        "processed_events",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("handler", String(150), primary_key=True),
        Column("processed_at", UtcDateTime(), nullable=False),
    )
    return outbox, processed


def emit(session: Session, event_type: str, payload: dict[str, Any]) -> Envelope:
    """Write an event to the outbox inside the caller's transaction.

    The payload is checked against the event's contract now, so a bad event fails the state
    change that implied it instead of failing later in a consumer.
    """
    [envelope] = emit_many(session, event_type, [payload])
    return envelope


def emit_many(session: Session, event_type: str, payloads: list[dict[str, Any]]
              ) -> list[Envelope]:
    """``emit`` for several events of one type: one INSERT for all of them."""
    envelopes = [build_envelope(event_type, payload, session.info.get("correlation_id"))
                 for payload in payloads]
    if not envelopes:
        return []
    now = utcnow()
    # One statement (insertmanyvalues), built once per outbox.
    session.execute(_insert_into(session.info["outbox_table"]), [
        {"event_id": envelope.event_id, "event_type": envelope.event_type,
         "body": json.dumps(envelope.to_wire()), "created_at": now, "next_attempt_at": now,
         "attempts": 0}
        for envelope in envelopes])
    session.info["outbox_written"] = True
    return envelopes


@lru_cache(maxsize=16)
def _insert_into(table: Table) -> Any:
    """Every event emitted runs it: built once per outbox table."""
    return insert(table)


def forget_in_outbox(session: Session, needles: list[str]) -> int:
    """Delete already-published outbox rows that mention any of ``needles`` (an erased
    customer's email): the rows are kept only as a publishing record, and must not keep a
    person the store was asked to forget. Unpublished rows stay: they are events still owed.
    Returns how many rows went."""
    outbox = session.info["outbox_table"]
    removed = 0
    # As json.dumps wrote them: non-ASCII escaped as \uXXXX, whatever case it was typed in.
    quoted = {form for n in needles if n
              for form in (json.dumps(n)[1:-1].lower(), json.dumps(n.lower())[1:-1])}
    for needle in quoted:
        removed += session.execute(
            delete(outbox).where(outbox.c.published_at.is_not(None),
                                 func.lower(outbox.c.body).contains(needle, autoescape=True))
        ).rowcount
    return removed
