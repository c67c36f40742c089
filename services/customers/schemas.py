"""Customers' wire formats."""

from marshmallow import RAISE, Schema, fields, post_load, validate

from messaging.contracts import AddressSchema


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


class CustomerCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    email = fields.Email(required=True, validate=validate.Length(max=254))
    first_name = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(max=100))
    last_name = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=100))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))
    locale = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(["es", "en"]))

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["email"] = data["email"].strip().lower()
        return data


class AddressInputSchema(AddressSchema):
    default_shipping = fields.Boolean(load_default=None, allow_none=True)
    default_billing = fields.Boolean(load_default=None, allow_none=True)


class AddressSchemaOut(Schema):
    id = fields.UUID(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    company = fields.String(allow_none=True)
    line1 = fields.String(required=True)
    line2 = fields.String(allow_none=True)
    city = fields.String(required=True)
    region = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    country = fields.String(required=True)
    phone = fields.String(allow_none=True)
    default_shipping = fields.Boolean(required=True)
    default_billing = fields.Boolean(required=True)


class AddressListSchema(Schema):
    items = fields.List(fields.Nested(AddressSchemaOut), required=True)


class CheckoutPrefillSchema(Schema):
    email = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    shipping_address = fields.Nested(AddressSchemaOut, allow_none=True, required=True)
    billing_address = fields.Nested(AddressSchemaOut, allow_none=True, required=True)
