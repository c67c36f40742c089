"""billing details and refunds

Customers keep their latest billing country and tax id (the merchant's list shows them),
addresses may carry a tax id, and each known order how much of it was refunded (spend is
what was paid less what was refunded).

Revision ID: customers_0009
Revises: customers_0008
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'customers_0009'
down_revision: str | None = 'customers_0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.add_column(sa.Column('billing_country', sa.String(length=2), nullable=True))
        batch.add_column(sa.Column('tax_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('addresses') as batch:
        batch.add_column(sa.Column('tax_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('customer_orders') as batch:
        batch.add_column(sa.Column('refunded', sa.Integer(), server_default='0',
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('customer_orders') as batch:
        batch.drop_column('refunded')
    with op.batch_alter_table('addresses') as batch:
        batch.drop_column('tax_id')
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('billing_country')
        batch.drop_column('tax_id')
