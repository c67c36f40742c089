"""categories version

Each customer's categories carry a version that grows at every change: orders keeps the
newest of customer_categories_changed, whatever order the events arrive in.

Revision ID: customers_0010
Revises: customers_0009
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'customers_0010'
down_revision: str | None = 'customers_0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.add_column(sa.Column('categories_version', sa.Integer(), server_default='0',
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('categories_version')
