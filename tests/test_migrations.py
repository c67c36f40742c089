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


def test_history_sentences_become_codes_and_a_persons_words_stay(tmp_path: Path) -> None:
    """orders_0012: the English the service used to write into an order's history becomes a
    code and params (the admin translates them); what a person typed stays as typed."""
    from alembic import command
    from sqlalchemy import text

    from messaging.migrations import alembic_config

    url = f"sqlite:///{tmp_path / 'orders.db'}"
    config = alembic_config(ROOT / "services" / "orders", url)
    command.upgrade(config, "orders_0011")
    engine = create_engine(url)
    comments = ["Order placed", "follows payment_status paid", "Unpaid after 30 minutes",
                "Paid at stripe after the order was abandoned: fulfil it or refund it",
                "Paid at test", "Refunded 12.50 EUR", "Paid at the counter"]
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO order_history (order_id, at, actor, field, comment, notify_customer) "
            "VALUES (:order_id, '2026-12-01 10:00:00', 'system', 'status', :comment, 0)"),
            [{"order_id": "0" * 32, "comment": comment} for comment in comments])
    command.upgrade(config, "head")
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT code, params, comment FROM order_history ORDER BY id")).all()
    engine.dispose()
    import json
    assert [(code, json.loads(params) if params else None, comment)
            for code, params, comment in rows] == [
        ("placed", {}, None),
        ("follows", {"field": "payment_status", "state": "paid"}, None),
        ("unpaid_after", {"minutes": 30}, None),
        ("paid_late", {"provider": "stripe", "status": "abandoned"}, None),
        ("paid_at", {"provider": "test"}, None),
        ("refunded", {"amount": 1250, "currency": "EUR"}, None),
        (None, None, "Paid at the counter"),  # a person's note: "the" is not a provider
    ]
