"""order numbers drawn by the INSERT

On PostgreSQL the order's number is the column's default, ``nextval('order_number_seq')``,
returned by the INSERT (RETURNING): one round trip less per checkout than asking the sequence
first. SQLite keeps its counter row, set by the checkout.

Revision ID: orders_0014
Revises: orders_0013
Create Date: 2026-12-03
"""
from collections.abc import Sequence

from alembic import op

revision: str = "orders_0014"
down_revision: str | None = "orders_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE orders ALTER COLUMN number "
                   "SET DEFAULT nextval('order_number_seq')")
        op.execute("ALTER SEQUENCE order_number_seq OWNED BY orders.number")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE order_number_seq OWNED BY NONE")
        op.execute("ALTER TABLE orders ALTER COLUMN number DROP DEFAULT")
