"""Orders' wire formats: what RPC callers send and get back."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, post_load, validate

from messaging.contracts import AddressSchema
from services.orders.domain import PAYMENT_METHODS

MAX_LINES = 100
MAX_QUANTITY = 999


class _Strict(Schema):
    class Meta:
        unknown = RAISE  # unknown fields are an error, never silently ignored


class LineRequestSchema(_Strict):
    sku = fields.String(required=True, validate=validate.Length(1, 64))
    quantity = fields.Integer(required=True, strict=True,
                              validate=validate.Range(1, MAX_QUANTITY))


class CheckoutRequestSchema(_Strict):
    """What a shopper sends to POST /api/v1/checkout. Prices never: they come from the
    catalogue. A logged-in customer's email comes from their account."""

    email = fields.Email(required=True, validate=validate.Length(max=254))
    lines = fields.List(fields.Nested(LineRequestSchema), required=True,
                        validate=validate.Length(1, MAX_LINES))
    shipping_address = fields.Nested(AddressSchema, allow_none=True, load_default=None)
    payment_method = fields.String(load_default="bank_transfer",
                                   validate=validate.OneOf(PAYMENT_METHODS))

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["email"] = data["email"].strip().lower()
        return data


class PlaceOrderSchema(CheckoutRequestSchema):
    """The RPC: the shopper's request plus what the gateway decided."""

    locale = fields.String(load_default="es", validate=validate.OneOf(["es", "en"]))
    customer_id = fields.UUID(allow_none=True, load_default=None)
    idempotency_key = fields.String(allow_none=True, load_default=None,
                                    validate=validate.Length(1, 200))
    offer_account = fields.Boolean(load_default=False)


class ProductSchema(Schema):
    sku = fields.String()
    title = fields.String()
    price = fields.Integer()
    currency = fields.String()
    stock = fields.Integer(allow_none=True)
    digital = fields.Boolean()
    active = fields.Boolean()


class OrderLineSchema(Schema):
    sku = fields.String()
    title = fields.String()
    quantity = fields.Integer()
    unit_price = fields.Integer()
    line_total = fields.Integer()
    digital = fields.Boolean()


class OrderPageSchema(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    before = fields.DateTime(load_default=None, allow_none=True)


class OrderSchema(Schema):
    id = fields.UUID()
    number = fields.Function(lambda order: f"#{order.number}")
    status = fields.String()
    payment_status = fields.String()
    fulfillment_status = fields.String()
    payment_method = fields.String()
    email = fields.String()
    customer_id = fields.UUID(allow_none=True)
    locale = fields.String()
    currency = fields.String()
    subtotal = fields.Integer()
    shipping_total = fields.Integer()
    total = fields.Integer()
    shipping_address = fields.Dict(allow_none=True)
    placed_at = fields.DateTime()
    lines = fields.List(fields.Nested(OrderLineSchema))


class ProductListSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema), required=True)


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema), required=True)
    next_before = fields.String(allow_none=True, required=True,
                                metadata={"description": "pass as `before` for the next page"})


class CheckoutResponseSchema(Schema):
    order = fields.Nested(OrderSchema, required=True)
    offer_account = fields.Boolean(
        required=True, metadata={"description": "the confirmation email offers an account"})
