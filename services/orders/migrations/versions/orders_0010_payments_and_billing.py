"""payments and billing

Orders keep a billing address (with company and tax id), the payment instructions the shopper
was given, the provider's payment reference, how much was refunded and an alert for the
merchant (paid after abandoned or canceled). Payment sessions (one attempt to pay at the
provider), the provider's webhook events (each handled once) and refunds get tables.

Revision ID: orders_0010
Revises: orders_0009
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'orders_0010'
down_revision: str | None = 'orders_0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('billing_address', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('payment_instructions', sa.Text(), nullable=True))
        batch.add_column(sa.Column('payment_reference', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('refunded_total', sa.Integer(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('payment_alert', sa.String(length=32), nullable=True))
        batch.create_index('ix_orders_payment_alert', ['payment_alert'])
    op.create_table(
        'payment_sessions',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('order_id', sa.Uuid(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('provider_session_id', sa.String(length=255), nullable=False),
        sa.Column('redirect_url', sa.String(length=2000), nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'provider_session_id',
                            name='uq_payment_sessions_provider_id'),
    )
    op.create_index('ix_payment_sessions_order_id', 'payment_sessions', ['order_id'])
    op.create_table(
        'provider_events',
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('order_id', sa.Uuid(), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('provider', 'event_id'),
    )
    op.create_index('ix_provider_events_order_id', 'provider_events', ['order_id'])
    op.create_table(
        'refunds',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('order_id', sa.Uuid(), nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=True),
        sa.Column('provider_refund_id', sa.String(length=255), nullable=True),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider_refund_id'),
    )
    op.create_index('ix_refunds_order_id', 'refunds', ['order_id'])


def downgrade() -> None:
    op.drop_table('refunds')
    op.drop_table('provider_events')
    op.drop_table('payment_sessions')
    with op.batch_alter_table('orders') as batch:
        batch.drop_index('ix_orders_payment_alert')
        batch.drop_column('payment_alert')
        batch.drop_column('refunded_total')
        batch.drop_column('payment_reference')
        batch.drop_column('payment_instructions')
        batch.drop_column('billing_address')
