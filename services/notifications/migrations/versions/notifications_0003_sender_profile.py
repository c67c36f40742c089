"""sender profile: the store's Reply-To, copied from store_settings_changed

Revision ID: notifications_0003
Revises: notifications_0002
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'notifications_0003'
down_revision: str | None = 'notifications_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sender_profile',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reply_to', sa.String(length=254), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('sender_profile')
