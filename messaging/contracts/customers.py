"""Customers' RPC contract: the request and reply formats its entrypoints take and
answer, which the gateway imports too (nothing here imports a service)."""

from __future__ import annotations

from enum import StrEnum

from marshmallow import RAISE, Schema, fields, post_load, validate

from messaging.contracts import LOCALES, AddressSchema
from messaging.fields import EmailAddress, SingleLine, StrictBoolean


class CustomersError(StrEnum):
    """Every problem code customers answers with (its RPCs' ServiceError codes; the gateway
    adds its own and validation_failed)."""

    ADDRESS_NOT_FOUND = "address_not_found"
    CATEGORY_EXISTS = "category_exists"
    CATEGORY_NOT_FOUND = "category_not_found"
    CUSTOMER_ERASED = "customer_erased"
    CUSTOMER_EXISTS = "customer_exists"
    CUSTOMER_HAS_ORDERS = "customer_has_orders"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    EMAIL_BELONGS_TO_ACCOUNT = "email_belongs_to_account"
    TOO_MANY_ADDRESSES = "too_many_addresses"
    VERIFY_EMAIL_FIRST = "verify_email_first"


ACCOUNT_STATUSES = ("active", "pending_approval", "invited", "disabled")

# The merchant's list: sort keys, as (column name, descending).
SORTS = {
    "-total_spent": ("total_spent", True), "total_spent": ("total_spent", False),
    "-orders_count": ("orders_count", True), "orders_count": ("orders_count", False),
    "-last_order_at": ("last_order_at", True), "last_order_at": ("last_order_at", False),
    "created_at": ("created_at", False), "-created_at": ("created_at", True),
    "name": ("name", False), "-name": ("name", True),
}


class CustomerSchema(Schema):
    id = fields.UUID()
    email = fields.String()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    type = fields.String()
    account_id = fields.UUID(allow_none=True)
    account_status = fields.String(allow_none=True)
    created_at = fields.DateTime()
    orders_count = fields.Integer()
    first_order_at = fields.DateTime(allow_none=True)
    last_order_at = fields.DateTime(allow_none=True)
    last_order_status = fields.String(allow_none=True)
    last_payment_method = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    billing_country = fields.String(allow_none=True, metadata={
        "description": "of the latest order's billing address"})
    tax_id = fields.String(allow_none=True, metadata={
        "description": "of the latest order's billing address (NIF, RUT, VAT number)"})
    accepts_marketing = fields.Boolean()
    marketing_consent_at = fields.DateTime(allow_none=True)
    marketing_withdrawn_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)
    erased_at = fields.DateTime(allow_none=True)
    total_spent = fields.Method("dump_spend")

    def dump_spend(self, customer: object) -> dict[str, int]:
        return {row.currency: row.amount for row in customer.spend}


class CustomerUpdateSchema(Schema):
    """What the merchant may change on a customer. The email only while the customer has no
    account: an account's email is the customer's to change (with confirmation)."""

    class Meta:
        unknown = RAISE

    email = EmailAddress(validate=validate.Length(max=254))
    first_name = SingleLine(allow_none=True, validate=validate.Length(max=100))
    last_name = SingleLine(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=30))
    locale = fields.String(allow_none=True, validate=validate.OneOf(LOCALES))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000),
                         metadata={"description": "the merchant's own note; never shown to "
                                                  "the customer"})
    accepts_marketing = StrictBoolean(metadata={
        "description": "consent the customer gave the merchant directly"})

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        if "email" in data:
            data["email"] = data["email"].strip().lower()
        return data


class AddressInputSchema(AddressSchema):
    default_shipping = StrictBoolean(load_default=None, allow_none=True)
    default_billing = StrictBoolean(load_default=None, allow_none=True)


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
    tax_id = fields.String(allow_none=True)
    default_shipping = StrictBoolean(required=True)
    default_billing = StrictBoolean(required=True)


class AddressListSchema(Schema):
    items = fields.List(fields.Nested(AddressSchemaOut), required=True)


class CheckoutPrefillSchema(Schema):
    email = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    shipping_address = fields.Nested(AddressSchemaOut, allow_none=True, required=True)
    billing_address = fields.Nested(AddressSchemaOut, allow_none=True, required=True)


class ProfileSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    accepts_marketing = StrictBoolean(required=True)
    marketing_consent_at = fields.DateTime(allow_none=True)
    marketing_withdrawn_at = fields.DateTime(allow_none=True)


class ProfileUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    first_name = SingleLine(allow_none=True, validate=validate.Length(max=100))
    last_name = SingleLine(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=30))
    locale = fields.String(validate=validate.OneOf(LOCALES))
    accepts_marketing = StrictBoolean()


class CustomerListQuerySchema(Schema):
    """GET /admin/customers: filters, a sort, and a keyset cursor."""

    class Meta:
        unknown = RAISE

    q = fields.String(validate=validate.Length(1, 100),
                      metadata={"description": "name, email or phone contains"})
    type = fields.String(validate=validate.OneOf(["guest", "registered"]))
    has_account = fields.Boolean()  # from a query string: true/false/1/0
    account_status = fields.String(validate=validate.OneOf(ACCOUNT_STATUSES))
    category = fields.UUID()
    country = fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$"))
    min_orders = fields.Integer(validate=validate.Range(0, 1_000_000))
    accepts_marketing = fields.Boolean()  # from a query string: true/false/1/0
    created_from = fields.DateTime()
    created_to = fields.DateTime()
    last_order_from = fields.DateTime()
    last_order_to = fields.DateTime()
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"),
                             metadata={"description": "the currency total_spent sorts by"})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(list(SORTS)))
    limit = fields.Integer(load_default=25, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(max=500))


class CustomerFilterSchema(CustomerListQuerySchema):
    """The list's filters alone, for bulk actions: no sort, page or cursor."""

    class Meta:
        unknown = RAISE
        exclude = ("sort", "limit", "cursor", "currency")


class CustomerListSchema(Schema):
    items = fields.List(fields.Nested(CustomerSchema), required=True)
    total = fields.Integer(required=True, metadata={"description": "matching customers"})
    next_cursor = fields.String(allow_none=True, required=True)


class CategoryInputSchema(Schema):
    class Meta:
        unknown = RAISE

    name = SingleLine(required=True, validate=validate.Length(1, 100))

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["name"] = " ".join(data["name"].split())
        return data


class CategorySchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    customers = fields.Integer(required=True)


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema), required=True)


class RankedCustomerSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    orders = fields.Integer(required=True)
    spent = fields.Integer(required=True)


class InsightsSchema(Schema):
    period = fields.Dict(required=True)
    currency = fields.String(required=True)
    customers_ordering = fields.Integer(required=True)
    orders = fields.Integer(required=True)
    best_by_spend = fields.List(fields.Nested(RankedCustomerSchema), required=True)
    best_by_orders = fields.List(fields.Nested(RankedCustomerSchema), required=True)
    repeat_customer_rate = fields.Float(required=True, metadata={
        "description": "share of customers ordering in the period with 2+ orders ever"})
    new_customers = fields.Integer(required=True)
    returning_customers = fields.Integer(required=True)
    guest_share = fields.Float(required=True)
    registered_share = fields.Float(required=True)
    top_countries = fields.List(fields.Dict(), required=True)


# --- RPC_ERRORS: held to the code by a test; python -m ops.error_catalogue rewrites it
RPC_ERRORS: dict[str, tuple[str, ...]] = {
    "add_address": (
        "customer_not_found",
        "too_many_addresses",
        "validation_failed",
        "verify_email_first",
    ),
    "add_members_by_filter": ("category_not_found", "customer_not_found", "validation_failed",),
    "checkout_prefill": ("customer_not_found", "verify_email_first",),
    "create_category": ("category_exists", "validation_failed",),
    "create_customer": ("customer_exists", "validation_failed",),
    "delete_address": ("address_not_found", "customer_not_found", "verify_email_first",),
    "delete_category": ("category_not_found", "customer_not_found",),
    "delete_customer": ("customer_has_orders", "customer_not_found",),
    "erase_customer": ("customer_not_found",),
    "export_customer": ("customer_not_found",),
    "get_address": ("address_not_found", "customer_not_found", "verify_email_first",),
    "get_category": ("category_not_found", "customer_not_found",),
    "get_customer": ("customer_not_found",),
    "get_customer_by_email": ("customer_not_found",),
    "get_customer_detail": ("customer_not_found",),
    "get_profile": ("customer_not_found", "verify_email_first",),
    "insights": ("validation_failed",),
    "list_addresses": ("customer_not_found", "verify_email_first",),
    "list_categories": (),
    "list_customers": ("validation_failed",),
    "rename_category": (
        "category_exists",
        "category_not_found",
        "customer_not_found",
        "validation_failed",
    ),
    "set_membership": ("category_not_found", "customer_not_found",),
    "update_address": (
        "address_not_found",
        "customer_not_found",
        "validation_failed",
        "verify_email_first",
    ),
    "update_customer": (
        "customer_erased",
        "customer_exists",
        "customer_not_found",
        "email_belongs_to_account",
        "validation_failed",
    ),
    "update_profile": ("customer_not_found", "validation_failed", "verify_email_first",),
}
# --- end of RPC_ERRORS ---
