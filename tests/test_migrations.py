"""Each service's migrations build exactly the schema its models describe: a model change
without its migration fails here, not in production."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from messaging.migrations import upgrade

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("identity", "customers", "orders", "notifications")


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(service: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / f'{service}.db'}"
    upgrade(ROOT / "services" / service, url)
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(
                connection, opts={"compare_type": False}), metadata)
    finally:
        engine.dispose()
    assert diff == []
