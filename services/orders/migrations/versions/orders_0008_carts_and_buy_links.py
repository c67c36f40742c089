"""carts and buy links

Saved carts (one per customer, lines keyed by SKU) and the merchant's direct-buy links, with
the link each order came from.

Revision ID: orders_0008
Revises: orders_0007
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'orders_0008'
down_revision: str | None = 'orders_0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'buy_links',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('lines', sa.JSON(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code', name='uq_buy_links_code'),
    )
    op.create_table(
        'carts',
        sa.Column('customer_id', sa.Uuid(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('customer_id'),
    )
    op.create_table(
        'cart_lines',
        sa.Column('customer_id', sa.Uuid(), nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('price_seen', sa.Integer(), nullable=True),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['carts.customer_id'],
                                name='fk_cart_lines_cart'),
        sa.PrimaryKeyConstraint('customer_id', 'sku'),
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('buy_link_id', sa.Uuid(), nullable=True))
        batch_op.create_index('ix_orders_buy_link_id', ['buy_link_id'], unique=False)
        batch_op.create_foreign_key('fk_orders_buy_link_id', 'buy_links', ['buy_link_id'],
                                    ['id'])


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint('fk_orders_buy_link_id', type_='foreignkey')
        batch_op.drop_index('ix_orders_buy_link_id')
        batch_op.drop_column('buy_link_id')
    op.drop_table('cart_lines')
    op.drop_table('carts')
    op.drop_table('buy_links')
