"""store time zone, address and reply-to

Revision ID: identity_0005
Revises: identity_0004
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'identity_0005'
down_revision: str | None = 'identity_0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64),
                                      server_default='Europe/Madrid', nullable=False))
        batch_op.add_column(sa.Column('store_address', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('reply_to', sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('reply_to')
        batch_op.drop_column('store_address')
        batch_op.drop_column('timezone')
