"""The database pool on real PostgreSQL: a connection is pinged before use only when it sat
idle (messaging.database.ping_when_idle), and a dropped one never loses more than the
transaction it was in."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from harness.infra import postgres_databases
from messaging.database import PING_AFTER_IDLE_SECONDS, create_engine_for


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
