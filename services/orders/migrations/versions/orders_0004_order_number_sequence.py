"""order numbers from a PostgreSQL sequence

Revision ID: orders_0004
Revises: orders_0003
Create Date: 2026-11-23 18:10:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = "orders_0004"
down_revision: str | None = "orders_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A counter row serialises every checkout on its lock; a sequence does not. SQLite (one
    # writer anyway) keeps the counter row.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE order_number_seq START WITH 1001")
        op.execute("SELECT setval('order_number_seq', GREATEST("
                   "(SELECT value FROM counters WHERE name = 'order_number'), 1000))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE order_number_seq")
