"""history codes

An order's history entries written by the service carry a code and its params (the admin
translates them) instead of English sentences; a person's comment stays in ``comment``.
Existing entries are converted by the sentences the service used to write.

Revision ID: orders_0012
Revises: orders_0011
Create Date: 2026-12-02
"""
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'orders_0012'
down_revision: str | None = 'orders_0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sentences as written up to orders_0011 (frozen here, whatever the service says later).
SENTENCES = [
    (r"Order placed", "placed", ()),
    (r"Order taken by staff", "taken_by_staff", ()),
    (r"Paid when the order was taken", "paid_when_taken", ()),
    (r"follows (\w+) (\w+)", "follows", ("field", "state")),
    (r"Unpaid after (\d+) minutes", "unpaid_after", ("minutes",)),
    (r"Paid at (\w+) after the order was (\w+): fulfil it or refund it", "paid_late",
     ("provider", "status")),
    (r"Paid at (\w+)", "paid_at", ("provider",)),
    (r"Payment declined at (\w+)", "declined_at", ("provider",)),
    (r"A second payment arrived \((.+)\): refund it at the provider", "paid_twice",
     ("payment_id",)),
    (r"Paid by card through the payment link \(was (\w+)\)", "paid_by_card_link",
     ("method",)),
    (r"Refunded at (\w+)", "refunded_at", ("provider",)),
    (r"Refunded (\d+\.\d\d) ([A-Z]{3})", "refunded", ("amount", "currency")),
]


def upgrade() -> None:
    op.add_column('order_history', sa.Column('code', sa.String(length=40), nullable=True))
    op.add_column('order_history', sa.Column('params', sa.JSON(), nullable=True))
    history = sa.table('order_history', sa.column('id', sa.Integer),
                       sa.column('actor', sa.String), sa.column('comment', sa.Text),
                       sa.column('code', sa.String), sa.column('params', sa.JSON))
    connection = op.get_bind()
    # Entries whose comment is one of the service's sentences (a person's words stay).
    rows = connection.execute(sa.select(history.c.id, history.c.comment)
                              .where(history.c.comment.is_not(None))).all()
    for row_id, comment in rows:
        for pattern, code, names in SENTENCES:
            match = re.fullmatch(pattern, comment)
            if match:
                params = dict(zip(names, match.groups(), strict=True))
                if code == "unpaid_after":
                    params["minutes"] = int(params["minutes"])
                if code == "refunded":  # written as amount / 100
                    params["amount"] = round(float(params["amount"]) * 100)
                connection.execute(sa.update(history).where(history.c.id == row_id)
                                   .values(code=code, params=params, comment=None))
                break


def downgrade() -> None:
    op.drop_column('order_history', 'params')
    op.drop_column('order_history', 'code')
