"""insert_as_flushed on real PostgreSQL (and SQLite, which `make run` uses): new objects
inserted by Core statements end up as a flush would leave them (stored whole, defaults
applied, what the database fills read back, persistent, changes tracked)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    FetchedValue,
    ForeignKey,
    Integer,
    Sequence,
    String,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from harness.infra import postgres_databases
from messaging.database import UtcDateTime, insert_as_flushed
from messaging.envelope import utcnow


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(10), default="guest")
    note: Mapped[str | None] = mapped_column(String(50), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Drawn by the INSERT (orders' numbers are): the database's value comes back.
    # (SQLite has no sequences: there it stays NULL.)
    number: Mapped[int | None] = mapped_column(
        Integer, Sequence("parent_number_seq", start=1001), server_default=FetchedValue(),
        nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    children: Mapped[list[Child]] = relationship(back_populates="parent",
                                                 cascade="all, delete-orphan")


class Child(Base):
    __tablename__ = "children"
    parent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parents.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(10), primary_key=True)
    amount: Mapped[int] = mapped_column(Integer, default=0)
    parent: Mapped[Parent] = relationship(back_populates="children")


class Entry(Base):
    """A row keyed by an autoincrement integer (orders' lines and history are)."""

    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parents.id"))
    text: Mapped[str] = mapped_column(String(20))


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'flushed.db'}")
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    with postgres_databases("flushed") as urls:
        engine = create_engine(urls["flushed"])
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()


def test_objects_are_stored_whole_and_then_tracked_like_flushed_ones(engine: Engine) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with Session(engine) as session, session.begin():
        parent = Parent(id=uuid.uuid4(), name="ana")
        parent.children = [Child(parent_id=parent.id, label="EUR", amount=5),
                           Child(parent_id=parent.id, label="USD")]
        insert_as_flushed(session, [parent, *parent.children])
        assert (parent.kind, parent.note, parent.version) == ("guest", None, 0)
        assert parent.created_at is not None
        assert not session.new and not session.dirty and parent in session
        inserts = [s for s in statements if s.startswith("INSERT")]
        assert len(inserts) == 2  # one per table, however many rows
        statements.clear()
        session.flush()
        assert statements == []  # nothing left for the unit of work
        parent.note = "changed"  # tracked as on any persistent object
        parent.children[0].amount += 1
    with Session(engine) as session:
        stored = session.scalars(select(Parent)).one()
        assert (stored.name, stored.note, stored.kind) == ("ana", "changed", "guest")
        assert sorted((c.label, c.amount) for c in stored.children) == [("EUR", 6), ("USD", 0)]
        assert session.scalar(select(func.count()).select_from(Child)) == 2


def test_what_the_database_fills_comes_back(engine: Engine) -> None:
    """Autoincrement keys and columns the INSERT draws are read back by RETURNING, in the
    order of the objects: the objects have their identity, and no later SELECT is needed."""
    with Session(engine) as session, session.begin():
        parents = [Parent(id=uuid.uuid4(), name=f"p{i}") for i in range(2)]
        entries = [Entry(parent_id=parents[i % 2].id, text=f"e{i}") for i in range(3)]
        insert_as_flushed(session, [*parents, *entries])
        if engine.dialect.name == "postgresql":
            assert [parent.number for parent in parents] == [1001, 1002]
        ids = [entry.id for entry in entries]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3
        assert session.get(Entry, ids[2]) is entries[2]  # in the identity map, by its key
        expected = {entry.id: (entry.parent_id, entry.text) for entry in entries}
    with Session(engine) as session:
        stored = {entry.id: (entry.parent_id, entry.text)
                  for entry in session.scalars(select(Entry))}
    assert stored == expected


def test_a_parent_listed_after_another_parents_children_goes_in_before_its_own(
        engine: Engine) -> None:
    """Objects go in as runs in the order given: a second parent (here with another set of
    columns) is inserted before the children listed after it, whatever class came first."""
    with Session(engine) as session, session.begin():
        first = Parent(id=uuid.uuid4(), name="first")
        second = Parent(id=uuid.uuid4(), name="second", number=5000)  # no RETURNING
        insert_as_flushed(session, [
            first, Child(parent_id=first.id, label="EUR"),
            second, Child(parent_id=second.id, label="EUR")])
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Child)) == 2
