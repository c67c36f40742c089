"""Our own small SQLAlchemy 2 session provider for nameko, with the outbox relay built in.

``Database`` is a nameko DependencyProvider. A service method writes its state change and the
events it implies in one transaction::

    with self.db.transaction() as session:
        session.add(order)
        emit(session, ORDER_PLACED, payload)

and the relay (a managed thread of the same provider) publishes committed outbox rows with
publisher confirms, woken right after the commit and sweeping on a timer for anything left
behind (crash, broker down, another replica's rows).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import (
    DateTime,
    Engine,
    MetaData,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.pool import QueuePool

from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError
from messaging.relay import ConfirmingPublisher, OutgoingEvent, PartlyPublished

log = logging.getLogger(__name__)

RELAY_BATCH_SIZE = 100
# A pooled connection idle this long is pinged before use (see ping_when_idle).
PING_AFTER_IDLE_SECONDS = float(os.environ.get("DATABASE_PING_AFTER_IDLE_SECONDS", "1.0"))


def var_dir() -> Path:
    """Where local state lives (SQLite files, the Maildir): ``CLIENTELA_VAR_DIR`` or ./var."""
    path = Path(os.environ.get("CLIENTELA_VAR_DIR", "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(env_name: str, sqlite_name: str) -> str:
    """The URL in ``env_name``, else a SQLite file under var/ (the ``make run`` default)."""
    return os.environ.get(env_name) or f"sqlite:///{var_dir() / sqlite_name}"


def create_engine_for(url: str, pool_size: int = 10, autocommit: bool = False) -> Engine:
    """The engine of a service's database. ``autocommit``: each statement commits by itself
    (PostgreSQL only), for writes that need no transaction; its own pool, so its
    connections never switch modes (a switch costs a round trip each way)."""
    if url.startswith("sqlite"):
        # One connection per process: green threads then queue on the pool (cooperatively)
        # instead of blocking the eventlet hub inside SQLite's busy handler.
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy own BEGIN so SAVEPOINTs work (SQLAlchemy's documented recipe).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock up front: no lock upgrades, so no SQLITE_BUSY deadlocks
            # between processes (a CLI and a running service).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if make_url(url).get_driver_name() == "psycopg2":
        # A flush that updates many rows (a batch of customers' figures) in one round trip
        # (psycopg2's execute_batch) rather than one per row; the ORM then cannot count
        # matched rows, which only version columns need (none here).
        options["executemany_mode"] = "values_plus_batch"
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_use_lifo=True,  # the busy connections stay busy; the rest go idle (and pinged)
        pool_recycle=1800,
        **options,
    )
    ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before handing it out only if it sat idle ``idle_seconds``
    or more (SQLAlchemy's pessimistic-disconnect recipe, made lazy).

    ``pool_pre_ping`` pays a round trip on every checkout, i.e. on every transaction; a
    connection in steady use proves itself by being used. One the database dropped while it
    was idle is replaced here; one dropped in the last instant fails its transaction, which
    SQLAlchemy reports as a disconnect (the whole pool is then renewed) and the caller gets
    a retryable 503, or the event handler a retry, as for a connection lost mid-query."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in_at", 0.0) < idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and hands out a fresh one (up to 3 tries).
            raise DisconnectionError(str(exc)) from exc


class Database(DependencyProvider):
    """Sessions for a service's own database, plus the outbox relay for its events."""

    def __init__(self, metadata: MetaData, url_env: str, sqlite_name: str) -> None:
        self.metadata = metadata
        self.url_env = url_env
        self.sqlite_name = sqlite_name
        self.engine: Engine | None = None
        self._autocommit_engine: Engine | None = None
        self._wake = threading.Event()
        self._relay_lock = threading.Lock()
        self._running = False

    # nameko lifecycle -------------------------------------------------------------------
    def setup(self) -> None:
        max_workers = int(self.container.config.get("max_workers", 10))
        self.url = database_url(self.url_env, self.sqlite_name)
        self.engine = create_engine_for(self.url, max_workers)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.outbox = self.metadata.tables["outbox"]
        self.processed_events = self.metadata.tables["processed_events"]
        config = self.container.config
        amqp_uri = os.environ.get("OUTBOX_AMQP_URI") or config[AMQP_URI_CONFIG_KEY]
        self.exchange = get_event_exchange(self.container.service_name, {})
        # Fail fast on a dead broker; the relay has its own backoff.
        self.publisher = ConfirmingPublisher(amqp_uri, self.exchange, transport_options={
            "max_retries": 1, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1})
        self.claim_due = self._claim_statement(self.outbox)
        self.poll_interval = float(os.environ.get("OUTBOX_POLL_SECONDS", "1.0"))

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._relay_loop, identifier="outbox-relay")

    def stop(self) -> None:
        self._running = False
        self._wake.set()
        with self._relay_lock:  # after the pass in flight, if any
            self.publisher.reset()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()

    def kill(self) -> None:
        self.stop()

    def autocommit_engine(self) -> Engine:
        """For ``execute_alone``, made on first use: a small pool of its own."""
        if self._autocommit_engine is None:
            self._autocommit_engine = create_engine_for(self.url, pool_size=2, autocommit=True)
        return self._autocommit_engine

    def get_dependency(self, worker_ctx: Any) -> DatabaseAccess:
        data = worker_ctx.context_data
        return DatabaseAccess(
            self,
            correlation_id=data.get("correlation_id") or worker_ctx.call_id,
            handler_name=f"{worker_ctx.service_name}.{worker_ctx.entrypoint.method_name}",
        )

    # the relay --------------------------------------------------------------------------
    def wake_relay(self) -> None:
        self._wake.set()

    def _relay_loop(self) -> None:
        backoff = self.poll_interval
        while self._running:
            self._wake.clear()
            try:
                published = self.relay_once()
                backoff = self.poll_interval
            except Exception as exc:  # broker or database down: keep going, slower
                log.warning("outbox relay failed, retrying in %.1fs: %s", backoff, exc)
                published = 0
                self._wake.wait(backoff)
                backoff = min(backoff * 2, 15.0)
                continue
            if published < RELAY_BATCH_SIZE:
                self._wake.wait(self.poll_interval)

    def relay_once(self) -> int:
        """Publish one batch of due outbox rows; returns how many were published.

        One statement claims the rows and marks them published (UPDATE … RETURNING over a
        FOR UPDATE SKIP LOCKED pick, so replicas share the work without publishing the same
        row at the same time); they are published, confirmed by the broker, and the mark
        commits after. A row that fails to publish, and those after it, are unmarked for a
        later attempt. A crash after publishing but before the commit republishes the rows
        later: consumers are idempotent by event_id.
        """
        with self._relay_lock, self.sessions() as session, session.begin():
            now = utcnow()
            rows = sorted(session.execute(self.claim_due, {"now": now}).all(),
                          key=lambda row: row.id)
            try:
                self.publisher.publish([
                    OutgoingEvent(row.event_id, row.event_type, row.body,
                                  json.loads(row.body).get("correlation_id"))
                    for row in rows])
            except PartlyPublished as exc:
                self._unmark(session, rows[exc.confirmed], rows[exc.confirmed:], now, exc.cause)
                failure: PartlyPublished | None = exc
            else:
                failure = None
        if failure is not None:
            raise failure.cause
        return len(rows)

    @staticmethod
    def _claim_statement(outbox: Any) -> Any:
        """Built once (the relay runs it on every wake-up): claim due rows, marked published
        as of ``:now``."""
        now = bindparam("now", type_=UtcDateTime())
        due = (select(outbox.c.id)
               .where(outbox.c.published_at.is_(None), outbox.c.next_attempt_at <= now)
               .order_by(outbox.c.id)
               .limit(RELAY_BATCH_SIZE)
               .with_for_update(skip_locked=True))
        return (update(outbox).where(outbox.c.id.in_(due.scalar_subquery()))
                .values(published_at=now)
                .returning(outbox.c.id, outbox.c.event_id, outbox.c.event_type,
                           outbox.c.body, outbox.c.attempts))

    def _unmark(self, session: Session, failed: Any, unsent: list[Any], now: datetime,
                exc: Exception) -> None:
        """Rows claimed but not published: the failed one backs off, the rest stay due."""
        outbox = self.outbox
        session.execute(update(outbox).where(outbox.c.id.in_([row.id for row in unsent]))
                        .values(published_at=None))
        delay = min(0.5 * 2 ** failed.attempts, 30.0)
        session.execute(
            update(outbox)
            .where(outbox.c.id == failed.id)
            .values(
                attempts=failed.attempts + 1,
                last_error=f"{type(exc).__name__}: {exc}"[:500],
                next_attempt_at=now + timedelta(seconds=delay),
            )
        )


class DatabaseAccess:
    """What a worker sees as ``self.db``."""

    def __init__(self, provider: Database, correlation_id: str | None, handler_name: str) -> None:
        self._provider = provider
        self.correlation_id = correlation_id
        self.handler_name = handler_name

    @property
    def engine(self) -> Engine:
        assert self._provider.engine is not None
        return self._provider.engine

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        session = self._provider.sessions()
        session.info["correlation_id"] = self.correlation_id
        session.info["outbox_table"] = self._provider.outbox
        try:
            with connection_loss_is_retryable(), session.begin():
                yield session
        finally:
            session.close()
        if session.info.get("outbox_written"):
            self._provider.wake_relay()

    def execute_alone(self, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
        """One write that needs no transaction around it (a single UPDATE), committed by
        itself: on PostgreSQL one round trip, where ``transaction`` adds a BEGIN and a
        COMMIT. (SQLite, in process, has no round trips to save: its writes keep their
        BEGIN IMMEDIATE, which an AUTOCOMMIT connection would leave open and roll back.)"""
        if self.engine.dialect.name == "sqlite":
            with self.engine.begin() as connection:
                return connection.execute(statement, parameters)
        with connection_loss_is_retryable(), \
                self._provider.autocommit_engine().connect() as connection:
            return connection.execute(statement, parameters)

    def already_processed(self, session: Session, envelope: Envelope) -> bool:
        """Record that this handler processed ``envelope``; True if it had already done so.

        Call it first inside the transaction that holds the handler's effect: the unique
        (event_id, handler) row then commits with the effect, or not at all.
        """
        return not self.first_deliveries(session, [envelope])

    def first_deliveries(self, session: Session, envelopes: list[Envelope]) -> list[Envelope]:
        """``already_processed`` for a batch, in one statement: the envelopes this handler has
        not processed yet (each event once, in the order given), now marked as processed in
        ``session``'s transaction."""
        first: dict[str, Envelope] = {}
        for envelope in envelopes:
            first.setdefault(envelope.event_id, envelope)
        unique = list(first.values())
        if not unique:
            return []
        table = self._provider.processed_events
        now = utcnow()
        # One round trip, no savepoint: a concurrent delivery of an event waits on the
        # unique key until this transaction ends, then finds the mark (or takes over).
        # Parameter sets, not .values([...]): SQLAlchemy sends them as one multi-row
        # statement all the same (insertmanyvalues), and compiles it once, where a
        # multi-VALUES construct is compiled again on every call.
        marked = set(session.scalars(
            insert_new_returning(session, table, table.c.event_id),
            [{"event_id": envelope.event_id, "handler": self.handler_name,
              "processed_at": now} for envelope in unique]))
        skipped = [envelope.event_id for envelope in envelopes
                   if envelope.event_id not in marked]
        if skipped:
            log.info("duplicate events skipped",
                     extra={"event_ids": skipped[:20], "count": len(skipped),
                            "handler": self.handler_name})
        return [envelope for envelope in unique if envelope.event_id in marked]


def insert_as_flushed(session: Session, objects: Sequence[Any]) -> None:
    """Insert new mapped objects with one Core statement per table (parents first, in the
    order given), then attach them to ``session`` as a flush would have left them:
    persistent, nothing pending. For hot paths: the unit of work's flush of a few new rows
    was a quarter of customers' handling of an order and of orders' checkout (profiled).

    Each object's columns are its own values, else the column's Python default, else NULL;
    what the database fills (a sequence, an autoincrement key, a server default) comes back
    by ``RETURNING``. Foreign keys are the caller's to set (the unit of work would have
    copied them from relationships)."""
    # Runs of objects of one class with the same columns, in the order given: one statement
    # each (a later parent is never inserted after its children).
    groups: list[tuple[tuple[Any, tuple[str, ...]], list[tuple[Any, dict[str, Any]]]]] = []
    for obj in objects:
        state = sa_inspect(obj)
        values: dict[str, Any] = {}
        for prop in state.mapper.column_attrs:
            column = prop.columns[0]
            if prop.key in state.dict:
                values[column.key] = state.dict[prop.key]
                continue
            if column.default is not None and column.default.is_scalar:
                value = column.default.arg
            elif column.default is not None and column.default.is_callable:
                value = column.default.arg(None)  # SQLAlchemy wraps it to take a context
            elif column.server_default is None and column.default is None \
                    and not (column.primary_key and column.autoincrement is not False
                             and column.type.python_type is int):
                value = None
            else:
                continue  # the database fills it: RETURNING brings it back
            setattr(obj, prop.key, value)
            values[column.key] = value
        key = (state.mapper, tuple(values))
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        groups[-1][1].append((obj, values))
    for (mapper, keys), rows in groups:
        filled = tuple(prop for prop in mapper.column_attrs if prop.columns[0].key not in keys)
        statement = _insert_returning(mapper.local_table, filled, len(rows) > 1)
        result = session.execute(statement, [values for _, values in rows])
        if filled:
            for (obj, _), row in zip(rows, result.all(), strict=True):
                for prop, value in zip(filled, row, strict=True):
                    setattr(obj, prop.key, value)
    for obj in objects:
        make_transient_to_detached(obj)
    session.add_all(objects)


@lru_cache(maxsize=64)
def _insert_returning(table: Any, filled: tuple[Any, ...], many: bool) -> Any:
    """Built once per shape: a statement built per call cost a checkout 0.5 ms (measured).
    Several rows' RETURNING comes back in parameter order only when asked to."""
    statement = insert(table)
    if not filled:
        return statement
    return statement.returning(*(prop.columns[0] for prop in filled),
                               sort_by_parameter_order=many)


def insert_new_returning(session: Session, table: Any, *returning: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING returning`` into ``table``: for parameter
    sets, the rows that were new. Built once per table and dialect (hot paths run it per
    event: a statement built per call is compiled-cache keyed again every time)."""
    return _insert_new_returning(session.get_bind().dialect.name, table, returning)


@lru_cache(maxsize=64)
def _insert_new_returning(dialect_name: str, table: Any, returning: tuple[Any, ...]) -> Any:
    return _conflict_aware_insert(dialect_name, table).on_conflict_do_nothing().returning(
        *returning)


@contextmanager
def connection_loss_is_retryable() -> Iterator[None]:
    """The connection died under a statement (a database restart, a failover, a terminated
    backend): a retryable 503 for callers, a retry for event handlers. The pool has
    replaced the connection for the next attempt."""
    try:
        yield
    except DBAPIError as exc:
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            raise
        log.warning("database connection lost: %s", str(exc.orig).strip()[:200])
        raise ServiceError("database_unavailable",
                           "The database connection was lost. Try again.", 503,
                           extra={"retry_after": 1}) from None


def upsert(session: Session, target: Any) -> Any:
    """An INSERT that knows ``ON CONFLICT`` (PostgreSQL's or SQLite's), for ``target``."""
    return _conflict_aware_insert(session.get_bind().dialect.name, target)


def _conflict_aware_insert(dialect_name: str, target: Any) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(target)


def locked_row(session: Session, model: Any, primary_key: Any, /, **values: Any) -> Any:
    """The row of ``model`` with ``primary_key``, inserted with ``values`` if missing
    (a concurrent insert is no error), and locked until commit: callers that change it one
    after the other, none lost. PostgreSQL locks the row; SQLite writes one at a time."""
    for _ in range(5):
        session.execute(upsert(session, model).values(**values).on_conflict_do_nothing())
        row = session.get(model, primary_key, with_for_update=True, populate_existing=True)
        if row is not None:
            return row
        # Deleted by a concurrent transaction between the insert (skipped: it was there)
        # and the lock (a login that succeeded clears its throttle row): insert it again.
    raise RuntimeError(f"{model.__tablename__} row {primary_key!r} keeps vanishing")


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
