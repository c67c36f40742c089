"""The gateway's own wire formats: problems, envelopes around lists, small request bodies.

Request and resource schemas that a service validates are that service's own (its
``schemas.py``); the gateway reads them to describe its API, never to run service code.
"""

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from messaging.contracts import LOCALES
from messaging.contracts.customers import ProfileSchema
from messaging.contracts.identity import AccountSchema
from messaging.contracts.orders import CheckoutRequestSchema, OrderSchema
from messaging.fields import EmailAddress, StrictBoolean


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ProblemSchema(Schema):
    """RFC 9457 problem details; extension members (``allowed``, ``retry_after``, ...) may
    follow (RFC 9457 §3.2)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "field → messages, for invalid input"})


class StatusSchema(Schema):
    status = fields.String(required=True)


class ReadinessSchema(Schema):
    status = fields.String(required=True)
    services = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class AcceptedSchema(Schema):
    status = fields.String(required=True)
    detail = fields.String(required=True)


class RefreshTokenRequestSchema(_Strict):
    refresh_token = fields.String(required=True)


class TokenRequestSchema(_Strict):
    token = fields.String(required=True)


class EmailRequestSchema(_Strict):
    email = fields.String(required=True)


class ActivateRequestSchema(_Strict):
    """Either ``token`` (an invitation) or ``order_id`` + ``token`` (the account offered
    after a guest checkout, from its confirmation email)."""

    token = fields.String(required=True)
    password = fields.String(required=True)
    order_id = fields.UUID()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)


class RevokedSchema(Schema):
    revoked = fields.Integer(required=True)


class AdminCustomerCreateSchema(_Strict):
    email = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    send_invite = StrictBoolean(metadata={"description": "create an account and email an "
                                                          "activation link (7 days)"})


class AdminCustomerCreatedSchema(Schema):
    invited = StrictBoolean(required=True)
    customer = fields.Dict(required=True, allow_none=True, metadata={
        "description": "null with an invitation: the record follows the account a moment later"})
    account = fields.Dict(required=True, allow_none=True)


class StorefrontCheckoutSchema(CheckoutRequestSchema):
    """The checkout body: a logged-in customer may name a saved address instead of writing
    one, and may save a new one to the address book."""

    email = EmailAddress(validate=validate.Length(max=254), metadata={
        "description": "a guest's email (required for a guest); a logged-in customer's "
                       "comes from the account"})
    locale = fields.String(validate=validate.OneOf(LOCALES), metadata={
        "description": "the language of the guest's emails; else Accept-Language, else the "
                       "store's"})
    shipping_address_id = fields.UUID(metadata={"description": "one of /me/addresses"})
    billing_address_id = fields.UUID(metadata={
        "description": "one of /me/addresses, for the invoice (company, tax_id)"})
    save_address = StrictBoolean(metadata={"description": "add shipping_address to "
                                                           "/me/addresses"})


class MeSchema(AccountSchema):
    profile = fields.Nested(ProfileSchema, allow_none=True, required=True)


class CustomerPageSchema(Schema):
    """The merchant's customer page: record, addresses, categories, figures, recent orders."""

    customer = fields.Dict(required=True)
    recent_orders = fields.List(fields.Nested(OrderSchema), required=True)


class CustomerErasureSchema(Schema):
    customer_id = fields.UUID(required=True)
    erased_at = fields.DateTime(required=True)
    status = fields.String(required=True, metadata={
        "description": "erased here; the other services follow within moments"})


class CustomerExportSchema(Schema):
    """Everything the store holds about one customer, gathered from every service."""

    exported_at = fields.DateTime(required=True)
    customer = fields.Dict(required=True)
    addresses = fields.List(fields.Dict(), required=True)
    categories = fields.List(fields.String(), required=True)
    account = fields.Dict(allow_none=True, required=True, metadata={
        "description": "identity: the account and its sessions (no password or tokens)"})
    order_ledger = fields.List(fields.Dict(), required=True, metadata={
        "description": "customers: the orders as the customer's figures count them"})
    orders = fields.List(fields.Dict(), required=True, metadata={
        "description": "orders: each order whole, with lines and history"})
    emails = fields.List(fields.Dict(), required=True, metadata={
        "description": "notifications: every email sent to the customer"})
    cart = fields.Dict(allow_none=True, required=True, metadata={
        "description": "orders: the account's saved cart"})


class BulkMembershipSchema(Schema):
    added = fields.Integer(required=True, metadata={"description": "customers newly added"})
    customers = fields.Integer(required=True, metadata={"description": "members now"})
