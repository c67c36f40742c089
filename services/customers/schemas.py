"""Customers' wire formats."""

from marshmallow import Schema, fields


class CustomerSchema(Schema):
    id = fields.UUID()
    email = fields.String()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    type = fields.String()
    account_id = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    orders_count = fields.Integer()
    first_order_at = fields.DateTime(allow_none=True)
    last_order_at = fields.DateTime(allow_none=True)
    last_order_status = fields.String(allow_none=True)
    last_payment_method = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    total_spent = fields.Method("dump_spend")

    def dump_spend(self, customer: object) -> dict[str, int]:
        return {row.currency: row.amount for row in customer.spend}
