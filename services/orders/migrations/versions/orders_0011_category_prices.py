"""category prices

Price lists per customer category (display, discount, per-SKU prices), orders' copy of each
registered customer's categories, and order lines that keep the catalogue price and where
the customer's price came from.

Revision ID: orders_0011
Revises: orders_0010
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'orders_0011'
down_revision: str | None = 'orders_0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'category_pricing',
        sa.Column('category_id', sa.Uuid(), nullable=False),
        sa.Column('price_display', sa.String(length=8), nullable=False),
        sa.Column('discount_percent', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint('category_id'),
    )
    op.create_table(
        'category_prices',
        sa.Column('category_id', sa.Uuid(), nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('price', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('category_id', 'sku'),
    )
    op.create_table(
        'customer_memberships',
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('category_ids', sa.JSON(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account_id'),
    )
    with op.batch_alter_table('order_lines') as batch:
        batch.add_column(sa.Column('list_price', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('price_source', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('order_lines') as batch:
        batch.drop_column('price_source')
        batch.drop_column('list_price')
    op.drop_table('customer_memberships')
    op.drop_table('category_prices')
    op.drop_table('category_pricing')
