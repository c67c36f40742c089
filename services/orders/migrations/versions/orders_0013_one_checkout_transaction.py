"""one checkout transaction

A checkout claims its Idempotency-Key in the order's own transaction (an advisory lock on
PostgreSQL; the order row's unique ``idempotency_key`` holds it once committed), so the claim
table and its separate transaction go. Replays of keys claimed before this read the order,
which has always carried the key and the request's fingerprint.

Revision ID: orders_0013
Revises: orders_0012
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'orders_0013'
down_revision: str | None = 'orders_0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table('idempotency_keys')


def downgrade() -> None:
    op.create_table(
        'idempotency_keys',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('order_id', sa.Uuid(), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.execute("INSERT INTO idempotency_keys (key, fingerprint, order_id, claimed_at) "
               "SELECT idempotency_key, request_fingerprint, id, placed_at FROM orders "
               "WHERE idempotency_key IS NOT NULL AND request_fingerprint IS NOT NULL")
