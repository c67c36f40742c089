"""prices visible

Who sees prices: everyone (as before), or logged-in customers only.

Revision ID: identity_0007
Revises: identity_0006
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'identity_0007'
down_revision: str | None = 'identity_0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prices_visible', sa.String(length=16),
                                      server_default='everyone', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('prices_visible')
