"""Orders' RPC contract for the merchant's side: an order's history and changes, refunds,
manual orders, the admin list and figures, hold windows and checkout limits, the catalogue's
editing and the category price lists. The shopper's side and the error catalogue:
messaging/contracts/orders.py."""

from __future__ import annotations

from collections.abc import Mapping

from marshmallow import (
    Schema,
    fields,
    validate,
)

from messaging.contracts import (
    CUSTOMER_EMAILED_CHANGES,
    FULFILLMENT_STATUSES,
    LOCALES,
    ORDER_STATUSES,
    PAYMENT_PROGRESS,
)
from messaging.contracts.orders import (
    MAX_LINES,
    MAX_QUANTITY,
    CheckoutRequestSchema,
    OrderSchema,
    StrictSchema,
)
from messaging.fields import EmailAddress, SingleLine, StrictBoolean

MIN_HOLD_MINUTES = 15


# Per machine, the states a customer may be emailed about (the contract's list).
EMAILED_CHANGES: Mapping[str, list[str]] = {
    machine: sorted(state for field, state in CUSTOMER_EMAILED_CHANGES if field == machine)
    for machine in ("status", "payment_status", "fulfillment_status")}


# What the orders service itself writes into an order's history: a code and its params, which
# the admin shows in the merchant's language. A person's words go in the entry's comment.
# The English here is for logs and exports.
HISTORY_NOTES: Mapping[str, str] = {
    "placed": "Order placed",
    "taken_by_staff": "Order taken by staff",
    "paid_when_taken": "Paid when the order was taken",
    "follows": "follows {field} {state}",
    "unpaid_after": "Unpaid after {minutes} minutes",
    "paid_at": "Paid at {provider}",
    "paid_late": "Paid at {provider} after the order was {status}: fulfil it or refund it",
    "declined_at": "Payment declined at {provider}",
    "paid_twice": "A second payment arrived ({payment_id}): refund it at the provider",
    "paid_by_card_link": "Paid by card through the payment link (was {method})",
    "refunded_at": "Refunded at {provider}",
    "refunded": "Refunded {amount} in minor units of {currency}",
}


# Prices per customer category: shown or hidden, and a discount of at most this much.
PRICE_DISPLAYS = ("shown", "hidden")


MAX_DISCOUNT_PERCENT = 90


class ManualOrderSchema(CheckoutRequestSchema):
    """POST /admin/orders: an order the merchant takes for an existing or new customer."""

    class Meta(StrictSchema.Meta):
        exclude = ("cart", "buy_link")

    customer_id = fields.UUID(allow_none=True, load_default=None,
                              metadata={"description": "an account's id, if the customer has "
                                                       "one"})
    locale = fields.String(load_default="es", validate=validate.OneOf(LOCALES))
    payment_processed = StrictBoolean(load_default=False, metadata={
        "description": "paid already (cash at the counter...): the order is marked paid; "
                       "otherwise the customer is emailed a payment link"})
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))
    payment_instructions = fields.String(load_default=None, allow_none=True,
                                         validate=validate.Length(max=2000))


class OrderEmailSchema(StrictSchema):
    """PATCH /admin/orders/{id}: the merchant corrects a guest order's email."""

    email = EmailAddress(required=True)
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))


class HoldWindowsSchema(StrictSchema):
    """Minutes an unpaid order holds its stock before it is abandoned, per payment method."""

    # At least 15 minutes: a shorter window abandons orders while the shopper is still paying.
    bank_transfer = fields.Integer(validate=validate.Range(MIN_HOLD_MINUTES, 90 * 24 * 60))
    cash = fields.Integer(validate=validate.Range(MIN_HOLD_MINUTES, 90 * 24 * 60))
    cheque = fields.Integer(validate=validate.Range(MIN_HOLD_MINUTES, 90 * 24 * 60))
    card = fields.Integer(validate=validate.Range(MIN_HOLD_MINUTES, 90 * 24 * 60))


class CheckoutLimitsSchema(StrictSchema):
    """What one checkout may hold, and one shopper's unpaid orders together (manual orders
    taken by staff are not limited)."""

    max_units_per_product = fields.Integer(validate=validate.Range(1, MAX_QUANTITY), metadata={
        "description": "units of one product in one order, and in one email's unpaid orders "
                       "together"})
    max_units_per_order = fields.Integer(validate=validate.Range(1, MAX_QUANTITY * MAX_LINES))
    max_unpaid_orders_per_email = fields.Integer(validate=validate.Range(1, 100), metadata={
        "description": "unpaid orders one email may hold stock with at once"})


class RecoveryUrlSchema(Schema):
    order_id = fields.UUID(required=True)
    number = fields.String(required=True)
    url = fields.String(required=True)


class DailyOrdersSchema(Schema):
    date = fields.Date(required=True)
    orders = fields.Integer(required=True, metadata={"description": "orders placed that day"})
    paid_orders = fields.Integer(required=True)
    revenue = fields.Integer(required=True, metadata={"description": "minor units, paid orders"})


class OrderStatsSchema(Schema):
    currency = fields.String(required=True)
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    orders = fields.Integer(required=True)
    paid_orders = fields.Integer(required=True)
    revenue = fields.Integer(required=True)
    days = fields.List(fields.Nested(DailyOrdersSchema), required=True)


class ManualOrderCreatedSchema(Schema):
    order = fields.Dict(required=True)
    payment_url = fields.String(allow_none=True, required=True, metadata={
        "description": "the customer's payment page (also emailed), unless already paid"})


class _Change(StrictSchema):
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))
    notify_customer = StrictBoolean(load_default=False)


class StatusChangeSchema(_Change):
    status = fields.String(required=True, validate=validate.Length(1, 32))
    payment = fields.String(load_default=None, allow_none=True,
                            validate=validate.OneOf(["refund", "keep"]), metadata={
                                "description": "canceling a paid order: refund the payment, "
                                               "or keep it (say why in comment)"})


class PaymentChangeSchema(_Change):
    payment_status = fields.String(required=True, validate=validate.Length(1, 32))


class FulfillmentChangeSchema(_Change):
    fulfillment_status = fields.String(required=True, validate=validate.Length(1, 32))
    carrier = SingleLine(load_default=None, allow_none=True,
                            validate=validate.Length(max=100))
    tracking_number = SingleLine(load_default=None, allow_none=True,
                                    validate=validate.Length(max=100))
    tracking_url = fields.Url(load_default=None, allow_none=True,
                              schemes={"http", "https"}, validate=validate.Length(max=500))


class NoteSchema(StrictSchema):
    comment = fields.String(required=True, validate=validate.Length(1, 2000))


class HistorySchema(Schema):
    at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    field = fields.String(required=True)
    from_value = fields.String(data_key="from", allow_none=True)
    to_value = fields.String(data_key="to", allow_none=True)
    code = fields.String(allow_none=True, metadata={
        "description": "what the service wrote, for the reader's language: "
                       + ", ".join(HISTORY_NOTES) + "; null: a person's change"})
    params = fields.Dict(allow_none=True, metadata={
        "description": "the code's values, e.g. follows: {field, state}"})
    comment = fields.String(allow_none=True, metadata={"description": "a person's words"})
    notify_customer = StrictBoolean(required=True)


class RefundSchema(Schema):
    id = fields.UUID(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    provider = fields.String(allow_none=True, metadata={
        "description": "the provider that refunded; null: recorded by hand"})
    provider_refund_id = fields.String(allow_none=True)
    actor = fields.String(required=True)
    comment = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)


class AdminOrderSummarySchema(OrderSchema):
    """An order in the merchant's list."""

    payment_alert = fields.String(allow_none=True, metadata={
        "description": "for the merchant to decide: paid_after_abandoned, "
                       "paid_after_canceled (fulfil it, or refund)"})


class AdminOrderSchema(AdminOrderSummarySchema):
    history = fields.List(fields.Nested(HistorySchema), required=True)
    # computed by orders from the order (its wire.py binds them)
    allowed = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "per state machine (status, payment_status, fulfillment_status), the "
                       "states a merchant may move it to from here"})
    manual_payment = fields.Boolean(metadata={
            "description": "paid by hand (its payment status is set by the merchant); "
                           "false: through the payment provider"})
    emailed_changes = fields.Function(lambda _order: EMAILED_CHANGES, metadata={
        "description": "per state machine, the states the customer may be emailed about "
                       "(notify_customer)"})
    refunds = fields.List(fields.Nested(RefundSchema), required=True)
    payment_reference = fields.String(allow_none=True, metadata={
        "description": "the provider's payment (Stripe: PaymentIntent id)"})
    channel = fields.String(metadata={"description": "storefront, or admin (a manual order)"})
    created_by = fields.String(allow_none=True)
    recovered_from = fields.UUID(allow_none=True, metadata={
        "description": "the abandoned or canceled order this one recovers"})
    buy_link_id = fields.UUID(allow_none=True, metadata={
        "description": "the direct-buy link the shopper came from"})


class CategoryPricingSchema(StrictSchema):
    """PUT /admin/categories/{id}/pricing."""

    price_display = fields.String(validate=validate.OneOf(PRICE_DISPLAYS), metadata={
        "description": "hidden: its members see no prices and cannot check out"})
    discount_percent = fields.Integer(strict=True, validate=validate.Range(
        0, MAX_DISCOUNT_PERCENT), metadata={"description": "off the catalogue price"})


class CategoryPricingOutSchema(Schema):
    category_id = fields.UUID(required=True)
    price_display = fields.String(required=True)
    discount_percent = fields.Integer(required=True)


class CategoryPriceSchema(StrictSchema):
    sku = fields.String(required=True, validate=validate.Length(1, 64))
    price = fields.Integer(required=True, strict=True,
                           validate=validate.Range(0, 1_000_000_000),
                           metadata={"description": "minor units"})


class CategoryPriceListSchema(StrictSchema):
    prices = fields.List(fields.Nested(CategoryPriceSchema), required=True,
                         validate=validate.Length(max=10_000))


class CategoryPriceOutSchema(Schema):
    sku = fields.String(required=True)
    price = fields.Integer(required=True)
    list_price = fields.Integer(allow_none=True, required=True,
                                metadata={"description": "the catalogue's"})
    currency = fields.String(allow_none=True, required=True)
    title = fields.String(allow_none=True, required=True)


class CategoryPriceListOutSchema(Schema):
    prices = fields.List(fields.Nested(CategoryPriceOutSchema), required=True)


class RefundRequestSchema(StrictSchema):
    """POST /admin/orders/{id}/refund: all that is left by default, or part of it."""

    amount = fields.Integer(load_default=None, allow_none=True, strict=True,
                            validate=validate.Range(1, 1_000_000_000), metadata={
                                "description": "minor units; absent: everything not yet "
                                               "refunded"})
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))
    notify_customer = StrictBoolean(load_default=True, metadata={
        "description": "email the customer the refund"})


class AdminOrderQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(sorted(ORDER_STATUSES)))
    payment_status = fields.String(validate=validate.OneOf(sorted(PAYMENT_PROGRESS)))
    fulfillment_status = fields.String(validate=validate.OneOf(sorted(FULFILLMENT_STATUSES)))
    customer_id = fields.UUID()
    payment_alert = fields.Boolean(metadata={  # from a query string: "true" / "false"
        "description": "true: only orders with a payment alert for the merchant"})
    buy_link = fields.UUID(metadata={"description": "orders from this direct-buy link"})
    email = fields.String(validate=validate.Length(max=254))
    q = fields.String(validate=validate.Length(1, 100),
                      metadata={"description": "order number or email contains"})
    placed_from = fields.DateTime()
    placed_to = fields.DateTime()
    limit = fields.Integer(load_default=25, validate=validate.Range(1, 100))
    before = fields.String(validate=validate.Length(max=500),
                           metadata={"description": "next_before of the previous page"})


class AdminOrderListSchema(Schema):
    items = fields.List(fields.Nested(AdminOrderSummarySchema), required=True)
    total = fields.Integer(required=True, metadata={
        "description": "matching orders, counted up to 10,000"})
    total_is_exact = StrictBoolean(required=True, metadata={
        "description": "false when more than 10,000 match"})
    next_before = fields.String(allow_none=True, required=True)


class ProductInputSchema(StrictSchema):
    sku = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", error="letters, digits, . _ - (1 to 64)"))
    title = SingleLine(required=True, validate=validate.Length(1, 200))
    titles = fields.Dict(keys=fields.String(validate=validate.OneOf(LOCALES)),
                         values=SingleLine(validate=validate.Length(1, 200)),
                         load_default=None, allow_none=True, metadata={
                             "description": 'the title in other languages, e.g. '
                                            '{"en": "Logo mug"}: emails and order lines use '
                                            "the order's language"})
    price = fields.Integer(required=True, strict=True,
                           validate=validate.Range(0, 1_000_000_000),
                           metadata={"description": "minor units (cents)"})
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    stock = fields.Integer(load_default=None, allow_none=True, strict=True,
                           validate=validate.Range(0, 10_000_000),
                           metadata={"description": "null: unlimited"})
    digital = StrictBoolean(load_default=False)
    active = StrictBoolean(load_default=True)


class ProductUpdateSchema(ProductInputSchema):
    class Meta:
        exclude = ("sku",)
