"""Orders' RPC contract: the request and reply formats its entrypoints take and
answer, which the gateway imports too (nothing here imports a service)."""

from __future__ import annotations

from enum import StrEnum

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from messaging.contracts import (
    PAYMENT_METHODS,
    AddressSchema,
)
from messaging.fields import EmailAddress, SingleLine, StrictBoolean


class OrdersError(StrEnum):
    """Every problem code orders answers with (its RPCs' ServiceError codes; the gateway
    adds its own and validation_failed)."""

    ACCOUNT_OFFER_EXPIRED = "account_offer_expired"
    ACCOUNT_OFFER_UNAVAILABLE = "account_offer_unavailable"
    ACCOUNT_ORDER = "account_order"
    ALREADY_PAID = "already_paid"
    BUY_LINK_DISABLED = "buy_link_disabled"
    BUY_LINK_NOT_FOUND = "buy_link_not_found"
    CARD_PAYMENTS_UNAVAILABLE = "card_payments_unavailable"
    CART_EMPTY = "cart_empty"
    CART_FULL = "cart_full"
    CATEGORY_NOT_FOUND = "category_not_found"
    CODE_CLASH = "code_clash"
    CUSTOMER_ERASED = "customer_erased"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    ILLEGAL_TRANSITION = "illegal_transition"
    INVALID_SIGNATURE = "invalid_signature"
    LOGIN_REQUIRED = "login_required"
    MIXED_CURRENCIES = "mixed_currencies"
    NOTHING_TO_NOTIFY = "nothing_to_notify"
    NOTHING_TO_SHIP = "nothing_to_ship"
    NOT_RECOVERABLE = "not_recoverable"
    ORDER_NOT_FOUND = "order_not_found"
    ORDER_NOT_PAYABLE = "order_not_payable"
    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_METHOD_UNAVAILABLE = "payment_method_unavailable"
    PAYMENT_NOT_MANUAL = "payment_not_manual"
    PAYMENT_PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
    PAYMENT_SESSION_CLOSED = "payment_session_closed"
    PAYMENT_SESSION_NOT_FOUND = "payment_session_not_found"
    PRICES_HIDDEN = "prices_hidden"
    PRODUCT_EXISTS = "product_exists"
    PRODUCT_NOT_FOUND = "product_not_found"
    QUANTITY_LIMIT = "quantity_limit"
    RECOVERY_LINK_INVALID = "recovery_link_invalid"
    REFUND_AMOUNT_REQUIRED = "refund_amount_required"
    REFUND_DECISION_REQUIRED = "refund_decision_required"
    REFUND_FAILED = "refund_failed"
    REFUND_NOT_POSSIBLE = "refund_not_possible"
    REFUND_PROVIDER_UNAVAILABLE = "refund_provider_unavailable"
    TOO_MANY_UNPAID_ORDERS = "too_many_unpaid_orders"
    UNKNOWN_PRODUCT = "unknown_product"
    UNKNOWN_PROVIDER = "unknown_provider"
    UNKNOWN_STATE = "unknown_state"
    UNPAID_LIMIT = "unpaid_limit"


MAX_LINES = 100
MAX_QUANTITY = 999


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE  # unknown fields are an error, never silently ignored


class LineRequestSchema(StrictSchema):
    sku = fields.String(required=True, validate=validate.Length(1, 64))
    quantity = fields.Integer(required=True, strict=True,
                              validate=validate.Range(1, MAX_QUANTITY))
    price_seen = fields.Integer(load_default=None, allow_none=True, strict=True,
                                validate=validate.Range(0, 1_000_000_000), metadata={
                                    "description": "the unit price the shopper was shown: "
                                                   "never charged, only compared (the order's "
                                                   "line says previous_unit_price if it "
                                                   "changed)"})


class CheckoutRequestSchema(StrictSchema):
    """What a shopper sends to POST /api/v1/checkout. Prices never: they come from the
    catalogue. A logged-in customer's email comes from their account."""

    email = EmailAddress(required=True, validate=validate.Length(max=254))
    lines = fields.List(fields.Nested(LineRequestSchema), load_default=None,
                        validate=validate.Length(1, MAX_LINES),
                        metadata={"description": "the cart; or send cart: saved instead"})
    cart = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["saved"]),
                         metadata={"description": "saved: check out the logged-in customer's "
                                                  "saved cart (/me/cart), emptied once the "
                                                  "order is placed"})
    buy_link = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(1, 16),
                             metadata={"description": "the code of the direct-buy link (/b/"
                                                      "{code}) the shopper came from"})
    shipping_address = fields.Nested(AddressSchema, allow_none=True, load_default=None)
    billing_address = fields.Nested(AddressSchema, allow_none=True, load_default=None, metadata={
        "description": "who the invoice is for (company, tax_id); absent: the shipping "
                       "address"})
    payment_method = fields.String(load_default="bank_transfer",
                                   validate=validate.OneOf(PAYMENT_METHODS))
    recovery_token = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(1, 200), metadata={
                                       "description": "from a recovery link (GET /recover/"
                                                      "{token}): the new order records which "
                                                      "order it recovers"})

    @validates_schema
    def one_cart(self, data: dict, **kwargs: object) -> None:
        if (data.get("lines") is None) == (data.get("cart") is None):
            raise ValidationError('Send the lines, or "cart": "saved" (one of the two).',
                                  "lines")

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["email"] = data["email"].strip().lower()
        return data


class CartLineSchema(Schema):
    """One line of a cart as the catalogue prices it today (saved carts, direct-buy links and
    recovery links all answer in this shape)."""

    sku = fields.String(required=True)
    title = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True, allow_none=True,
                                metadata={"description": "today's price (minor units)"})
    line_total = fields.Integer(required=True, allow_none=True)
    currency = fields.String(required=True, allow_none=True)
    previous_unit_price = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the price the shopper saw before, when it has changed since"})
    list_price = fields.Integer(allow_none=True, metadata={
        "description": "the catalogue price, when this customer's differs"})
    price_source = fields.String(allow_none=True, metadata={
        "description": "catalogue, or the category id the price comes from"})
    available = StrictBoolean(required=True, metadata={
        "description": "can be bought as it stands"})
    issue = fields.String(required=True, allow_none=True, metadata={
        "description": "why not: unknown_product, inactive, out_of_stock, "
                       "insufficient_stock"})
    stock = fields.Integer(required=True, allow_none=True,
                           metadata={"description": "units left (null: unlimited)"})


class CartSchema(Schema):
    lines = fields.List(fields.Nested(CartLineSchema), required=True)
    currency = fields.String(required=True, allow_none=True)
    subtotal = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the lines that can be bought (null: prices are not shown to you)"})
    item_count = fields.Integer(required=True)
    ready_for_checkout = StrictBoolean(required=True, metadata={
        "description": "every line can be bought, in one currency"})


class SavedCartSchema(CartSchema):
    updated_at = fields.DateTime(required=True, allow_none=True)


class CartReplaceSchema(StrictSchema):
    lines = fields.List(fields.Nested(LineRequestSchema), required=True,
                        validate=validate.Length(0, MAX_LINES))


class CartMergedSchema(Schema):
    cart = fields.Nested(SavedCartSchema, required=True)
    adjustments = fields.List(fields.Dict(), required=True, metadata={
        "description": "lines changed by the merge: sku, requested, quantity, reason "
                       "(capped_at_stock, capped_at_maximum, unknown_product)"})


class BuyLinkInputSchema(StrictSchema):
    title = SingleLine(required=True, validate=validate.Length(1, 200),
                          metadata={"description": "the merchant's name for it"})
    lines = fields.List(fields.Nested(LineRequestSchema), required=True,
                        validate=validate.Length(1, 20))


class BuyLinkUpdateSchema(StrictSchema):
    title = SingleLine(validate=validate.Length(1, 200))
    active = StrictBoolean(metadata={"description": "false: the link answers 410 Gone"})


class BuyLinkSchema(Schema):
    id = fields.UUID(required=True)
    code = fields.String(required=True)
    url = fields.String(required=True, metadata={"description": "the short link to post"})
    title = fields.String(required=True)
    lines = fields.List(fields.Dict(), required=True)
    active = StrictBoolean(required=True)
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    disabled_at = fields.DateTime(required=True, allow_none=True)
    orders = fields.Integer(required=True, metadata={"description": "orders placed from it"})
    paid_orders = fields.Integer(required=True)
    revenue = fields.Integer(required=True, metadata={
        "description": "total of its paid orders (minor units)"})
    currency = fields.String(required=True, allow_none=True)


class BuyLinkListSchema(Schema):
    items = fields.List(fields.Nested(BuyLinkSchema), required=True)


class BuyLinkCartSchema(CartSchema):
    code = fields.String(required=True, metadata={"description": "send as buy_link at checkout"})
    title = fields.String(required=True)


class RecoveryCartSchema(CartSchema):
    number = fields.String(required=True, metadata={"description": "the order it recovers"})
    email = fields.String(required=True)
    payment_method = fields.String(required=True)
    shipping_address = fields.Dict(allow_none=True, required=True)
    recovery_token = fields.String(required=True, metadata={
        "description": "send it back with POST /checkout"})


class ProductSchema(Schema):
    sku = fields.String()
    title = fields.String()
    titles = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    price = fields.Integer(allow_none=True, metadata={
        "description": "the caller's price (minor units); null: not shown to this caller "
                       "(log in, or the store shows your category no prices)"})
    list_price = fields.Integer(allow_none=True, metadata={
        "description": "the catalogue price, when the caller's differs (strike it through)"})
    price_source = fields.String(allow_none=True, metadata={
        "description": "catalogue, hidden, or the category id the price comes from"})
    currency = fields.String()
    stock = fields.Integer(allow_none=True)
    digital = StrictBoolean()
    active = StrictBoolean()


class OrderLineSchema(Schema):
    sku = fields.String()
    title = fields.String()
    quantity = fields.Integer()
    unit_price = fields.Integer()
    line_total = fields.Integer()
    digital = StrictBoolean()
    list_price = fields.Integer(allow_none=True, metadata={
        "description": "the catalogue price, when the customer's category price differed"})
    price_source = fields.String(allow_none=True, metadata={
        "description": "catalogue, or the category id the price came from"})
    previous_unit_price = fields.Integer(allow_none=True, load_default=None, metadata={
        "description": "in a checkout's answer: the price the shopper was shown (price_seen, "
                       "or the saved cart's), when the order's differs"})


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
    billing_address = fields.Dict(allow_none=True)
    payment_instructions = fields.String(allow_none=True, metadata={
        "description": "how to pay (bank transfer details), for a manual method"})
    refunded_total = fields.Integer(metadata={"description": "minor units refunded so far"})
    carrier = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)
    tracking_url = fields.String(allow_none=True)
    placed_at = fields.DateTime()
    lines = fields.List(fields.Nested(OrderLineSchema))


class ProductListSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema), required=True)


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema), required=True)
    next_before = fields.String(allow_none=True, required=True,
                                metadata={"description": "pass as `before` for the next page"})


class StartPaymentSchema(Schema):
    redirect_url = fields.String(required=True, metadata={
        "description": "send the shopper here to pay"})
    provider = fields.String(required=True)
    expires_at = fields.DateTime(required=True)


class CheckoutResponseSchema(Schema):
    order = fields.Nested(OrderSchema, required=True)
    payment = fields.Nested(StartPaymentSchema, required=True, allow_none=True, metadata={
        "description": "a card order: send the shopper to payment.redirect_url to pay (null: "
                       "a manual method, or the provider did not answer: the email carries "
                       "the payment link)"})
    offer_account = StrictBoolean(
        required=True, metadata={"description": "the confirmation email offers an account"})


# --- RPC_ERRORS: held to the code by a test; python -m ops.error_catalogue rewrites it
RPC_ERRORS: dict[str, tuple[str, ...]] = {
    "add_cart_line": ("cart_full", "order_not_found", "unknown_product", "validation_failed",),
    "add_note": ("order_not_found", "validation_failed",),
    "change_order": (
        "illegal_transition",
        "nothing_to_notify",
        "nothing_to_ship",
        "order_not_found",
        "payment_not_manual",
        "refund_amount_required",
        "refund_decision_required",
        "refund_not_possible",
        "refund_provider_unavailable",
        "unknown_state",
        "validation_failed",
    ),
    "close_account_offer": ("order_not_found",),
    "correct_order_email": (
        "account_order",
        "customer_erased",
        "order_not_found",
        "validation_failed",
    ),
    "create_buy_link": (
        "code_clash",
        "mixed_currencies",
        "prices_hidden",
        "unknown_product",
        "validation_failed",
    ),
    "create_manual_order": (
        "cart_empty",
        "illegal_transition",
        "login_required",
        "mixed_currencies",
        "order_not_found",
        "out_of_stock",
        "payment_method_unavailable",
        "prices_hidden",
        "quantity_limit",
        "recovery_link_invalid",
        "too_many_unpaid_orders",
        "unknown_product",
        "unknown_state",
        "unpaid_limit",
        "validation_failed",
    ),
    "create_product": ("product_exists", "validation_failed",),
    "export_orders_of": ("order_not_found",),
    "export_page": ("validation_failed",),
    "get_admin_order": ("order_not_found",),
    "get_cart": ("order_not_found",),
    "get_category_prices": ("category_not_found", "order_not_found",),
    "get_category_pricing": ("category_not_found", "order_not_found",),
    "get_checkout_limits": (),
    "get_customer_order": ("order_not_found",),
    "get_guest_order": ("order_not_found",),
    "get_hold_windows": (),
    "get_order": ("order_not_found",),
    "get_recovery_cart": ("recovery_link_invalid",),
    "list_admin_orders": ("validation_failed",),
    "list_all_products": (),
    "list_buy_links": (),
    "list_customer_orders": ("order_not_found", "validation_failed",),
    "list_products": (),
    "merge_cart": ("cart_full", "order_not_found", "validation_failed",),
    "open_account_offer": (
        "account_offer_expired",
        "account_offer_unavailable",
        "order_not_found",
    ),
    "open_buy_link": ("buy_link_disabled", "buy_link_not_found",),
    "order_stats": ("validation_failed",),
    "place_order": (
        "cart_empty",
        "idempotency_in_progress",
        "idempotency_key_reused",
        "login_required",
        "mixed_currencies",
        "order_not_found",
        "out_of_stock",
        "payment_method_unavailable",
        "prices_hidden",
        "quantity_limit",
        "recovery_link_invalid",
        "too_many_unpaid_orders",
        "unknown_product",
        "unpaid_limit",
        "validation_failed",
    ),
    "receive_payment_event": ("illegal_transition", "unknown_provider", "unknown_state",),
    "recent_orders_of": ("order_not_found",),
    "recovery_url": ("not_recoverable", "order_not_found",),
    "refund_order": (
        "order_not_found",
        "refund_not_possible",
        "refund_provider_unavailable",
        "validation_failed",
    ),
    "remove_cart_line": ("order_not_found",),
    "replace_cart": ("order_not_found", "unknown_product", "validation_failed",),
    "set_category_prices": (
        "category_not_found",
        "order_not_found",
        "unknown_product",
        "validation_failed",
    ),
    "set_category_pricing": ("category_not_found", "order_not_found", "validation_failed",),
    "set_checkout_limits": ("validation_failed",),
    "set_hold_windows": ("validation_failed",),
    "start_payment": (
        "already_paid",
        "card_payments_unavailable",
        "order_not_found",
        "order_not_payable",
    ),
    "test_payment_outcome": ("payment_session_closed", "payment_session_not_found",),
    "test_payment_page": ("payment_session_not_found",),
    "update_buy_link": ("buy_link_not_found", "order_not_found", "validation_failed",),
    "update_product": ("product_not_found", "validation_failed",),
}
# --- end of RPC_ERRORS ---
