"""The database pool on real PostgreSQL: a connection is pinged before use only when it sat
idle (messaging.database.ping_when_idle), and a dropped one never loses more than the
transaction it was in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from harness.infra import postgres_databases
from messaging.database import (
    PING_AFTER_IDLE_SECONDS,
    Database,
    DatabaseAccess,
    create_engine_for,
)
from messaging.outbox import add_messaging_tables


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT pg_backend_pid()"))


def terminate(url: str, pid: int) -> None:
    admin = create_engine(url)
    with admin.begin() as connection:
        assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


@pytest.fixture
def dropped() -> Iterator[tuple[Engine, int]]:
    """A one-connection pool whose connection the database has just terminated (its old
    backend pid beside it)."""
    with postgres_databases("pool") as urls:
        engine = create_engine_for(urls["pool"], pool_size=1)
        first = backend_pid(engine)
        terminate(urls["pool"], first)
        yield engine, first
        engine.dispose()


def test_a_connection_dropped_while_idle_is_replaced_unseen(
        dropped: tuple[Engine, int]) -> None:
    engine, first = dropped
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    assert backend_pid(engine) != first  # pinged, found dead, replaced: no error


def test_a_busy_connection_is_not_pinged_and_a_drop_costs_one_transaction(
        dropped: tuple[Engine, int]) -> None:
    engine, first = dropped
    # Used a moment ago: handed out without a ping (no round trip per transaction), so
    # the drop shows as this one transaction's error; SQLAlchemy then renews the pool.
    with pytest.raises(OperationalError) as failed:
        backend_pid(engine)
    assert failed.value.connection_invalidated
    assert backend_pid(engine) != first


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseAccess]:
    """A service's database access with one table, on either backend."""
    metadata = MetaData()
    add_messaging_tables(metadata)
    Table("things", metadata, Column("id", Integer, primary_key=True), Column("n", Integer))
    with postgres_databases("alone") as urls:
        url = urls["alone"] if request.param == "postgresql" \
            else f"sqlite:///{tmp_path / 'alone.db'}"
        provider = Database(metadata, url_env="UNUSED_DATABASE_URL", sqlite_name="unused.db")
        provider.url = url
        provider.engine = create_engine_for(url, pool_size=1)
        provider.sessions = sessionmaker(provider.engine)
        provider.outbox = metadata.tables["outbox"]
        metadata.create_all(provider.engine)
        yield DatabaseAccess(provider, correlation_id=None, handler_name="test.handler")
        provider.engine.dispose()
        provider.autocommit_engine().dispose()


def test_a_write_alone_is_committed_and_leaves_its_connection_transactional(
        database: DatabaseAccess) -> None:
    things = database._provider.metadata.tables["things"]
    with database.transaction() as session:
        session.execute(insert(things).values(id=1, n=0))
    assert database.execute_alone(update(things).values(n=1)).rowcount == 1
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.execute(insert(things).values(id=2, n=0))
        raise RuntimeError("rolled back")  # the pooled connection is no longer autocommit
    with database.engine.connect() as connection:
        assert connection.execute(select(things.c.id, things.c.n)).all() == [(1, 1)]
