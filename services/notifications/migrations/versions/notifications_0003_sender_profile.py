"""sender profile (the store's Reply-To, from store_settings_changed) and bouncing addresses

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
    op.create_table(
        'bouncing_addresses',
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('bounces', sa.Integer(), nullable=False),
        sa.Column('first_bounced_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_bounced_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint('email'),
    )


def downgrade() -> None:
    op.drop_table('bouncing_addresses')
    op.drop_table('sender_profile')
