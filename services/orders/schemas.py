"""Orders' own wire formats: what only the service reads. Its RPC contract (what the
gateway sends and reads) is messaging/contracts/orders.py."""

from __future__ import annotations

from marshmallow import (
    RAISE,
    Schema,
    fields,
    validate,
)

from messaging.contracts import LOCALES
from messaging.contracts.orders import (
    CheckoutRequestSchema,
)
from messaging.fields import StrictBoolean


class PlaceOrderSchema(CheckoutRequestSchema):
    """The RPC: the shopper's request plus what the gateway decided."""

    locale = fields.String(load_default="es", validate=validate.OneOf(LOCALES))
    customer_id = fields.UUID(allow_none=True, load_default=None)
    idempotency_key = fields.String(allow_none=True, load_default=None,
                                    validate=validate.Length(1, 200))
    offer_account = StrictBoolean(load_default=False)
    account_exists = StrictBoolean(load_default=False)  # the guest's email has an account
    # A logged-in customer asked to keep the shipping address: customers saves it when it
    # hears of the order (order_placed).
    save_shipping_address = StrictBoolean(load_default=False)
    # The store's instructions for a manual method (bank transfer details), as shown now.
    payment_instructions = fields.String(load_default=None, allow_none=True,
                                         validate=validate.Length(max=2000))


class OrderPageSchema(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    before = fields.DateTime(load_default=None, allow_none=True)
