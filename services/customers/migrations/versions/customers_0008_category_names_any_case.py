"""category names unique whatever their case

Names that differ only in case ("Mayorista", "mayorista") become one name each: the later
ones get " (2)", " (3)"... so the index can be made; nothing is merged or lost.

Revision ID: customers_0008
Revises: customers_0007
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'customers_0008'
down_revision: str | None = 'customers_0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    connection = op.get_bind()
    seen: dict[str, int] = {}
    for category_id, name in connection.execute(sa.text(
            "SELECT id, name FROM categories ORDER BY created_at, id")).all():
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            connection.execute(sa.text("UPDATE categories SET name = :n WHERE id = :i"),
                               {"n": f"{name[:90]} ({seen[key]})", "i": category_id})
    op.create_index('uq_categories_name_lower', 'categories', [sa.text('lower(name)')],
                    unique=True)


def downgrade() -> None:
    op.drop_index('uq_categories_name_lower', table_name='categories')
