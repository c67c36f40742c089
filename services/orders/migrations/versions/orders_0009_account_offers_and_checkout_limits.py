"""account offers and checkout limits

An order records the account its confirmation offered (until when, and whether it was taken)
its access token sealed (for the links of later emails), products their titles in other
languages,
and the merchant's checkout limits get a table (units per product and per order, unpaid
orders per email).

Revision ID: orders_0009
Revises: orders_0008
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'orders_0009'
down_revision: str | None = 'orders_0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('account_offer_expires_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('account_offer_used_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('access_token_sealed', sa.String(length=500),
                                   nullable=True))
    with op.batch_alter_table('products') as batch:
        batch.add_column(sa.Column('titles', sa.JSON(), nullable=True))
    op.create_table(
        'checkout_limits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('max_units_per_product', sa.Integer(), nullable=False),
        sa.Column('max_units_per_order', sa.Integer(), nullable=False),
        sa.Column('max_unpaid_orders_per_email', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    # The one row, with the defaults (services.orders.domain.DEFAULT_CHECKOUT_LIMITS):
    # checkout reads it with its count of the shopper's unpaid orders, in one statement.
    op.execute("INSERT INTO checkout_limits (id, max_units_per_product, max_units_per_order, "
               "max_unpaid_orders_per_email) VALUES (1, 999, 5000, 5)")


def downgrade() -> None:
    op.drop_table('checkout_limits')
    with op.batch_alter_table('products') as batch:
        batch.drop_column('titles')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('access_token_sealed')
        batch.drop_column('account_offer_used_at')
        batch.drop_column('account_offer_expires_at')
