"""payment methods

The store's enabled payment methods (all four, as before, for an existing store) and the bank
details a transfer order shows.

Revision ID: identity_0006
Revises: identity_0005
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'identity_0006'
down_revision: str | None = 'identity_0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_methods', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('bank_transfer_instructions', sa.Text(), nullable=True))
    op.execute("UPDATE store_settings SET payment_methods = "
               "'[\"bank_transfer\", \"cash\", \"cheque\", \"card\"]'")


def downgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('bank_transfer_instructions')
        batch_op.drop_column('payment_methods')
