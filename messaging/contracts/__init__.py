"""Event contracts: every event's name, source, version and payload schema.

A producer validates the payload before it writes the outbox row; a consumer validates it
again on receipt. Adding an optional field keeps the version; anything else bumps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate

from messaging.envelope import Envelope
from messaging.fields import SingleLine

# Event names, one constant each, so a typo is an import error rather than a silent miss.
STORE_SETTINGS_CHANGED = "store_settings_changed"
ACCOUNT_REGISTERED = "account_registered"
ACCOUNT_EMAIL_VERIFIED = "account_email_verified"
PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_CHANGED = "password_changed"
ACCOUNT_INVITED = "account_invited"
EMAIL_CHANGE_REQUESTED = "email_change_requested"
EMAIL_CHANGED = "email_changed"
ACCOUNT_APPROVED = "account_approved"
ACCOUNT_DISABLED = "account_disabled"
ACCOUNT_ENABLED = "account_enabled"
CUSTOMER_CREATED = "customer_created"
CUSTOMER_UPDATED = "customer_updated"
CUSTOMER_ERASED = "customer_erased"
CUSTOMER_CATEGORIES_CHANGED = "customer_categories_changed"
CATEGORY_DELETED = "category_deleted"
ORDER_PLACED = "order_placed"
ORDER_STATUS_CHANGED = "order_status_changed"
PAYMENT_STATUS_CHANGED = "payment_status_changed"
FULFILLMENT_UPDATED = "fulfillment_updated"
ORDER_CANCELED = "order_canceled"
ORDER_ABANDONED = "order_abandoned"
ORDER_EMAIL_CORRECTED = "order_email_corrected"


# The languages every email, template and storefront text is written in.
LOCALES = ("es", "en")

# How an order can be paid: manual methods are confirmed by the merchant; card goes through
# the configured provider. The store enables some of them (identity's store settings).
MANUAL_PAYMENT_METHODS = ("bank_transfer", "cash", "cheque")
PROVIDER_PAYMENT_METHODS = ("card",)
PAYMENT_METHODS = (*MANUAL_PAYMENT_METHODS, *PROVIDER_PAYMENT_METHODS)

# The states of an order's three machines, as events carry them (orders' domain.MACHINES
# moves between exactly these; a test holds them together). An order is live, and counts
# for its customer, unless it ended canceled or abandoned; the payment machine only moves
# forward, in PAYMENT_PROGRESS order (pending → voided → paid → refunds).
ORDER_STATUSES = ("pending_payment", "paid", "completed", "canceled", "abandoned")
ENDED_UNSOLD_STATUSES = ("canceled", "abandoned")
LIVE_ORDER_STATUSES = tuple(s for s in ORDER_STATUSES if s not in ENDED_UNSOLD_STATUSES)
PAYMENT_PROGRESS = ("pending", "voided", "paid", "partially_refunded", "refunded")
MONEY_KEPT_PAYMENT_STATUSES = ("paid", "partially_refunded")
FULFILLMENT_STATUSES = ("unfulfilled", "requested", "in_transit", "delivered", "canceled")


class _Payload(Schema):
    class Meta:
        unknown = EXCLUDE  # tolerate additive changes from newer producers


def _text(max_len: int, required: bool = True) -> fields.String:
    """One line of an address: no CR, LF or other control characters (labels, CSV, emails)."""
    if required:
        return SingleLine(required=True, validate=validate.Length(1, max_len))
    return SingleLine(allow_none=True, load_default=None, validate=validate.Length(max=max_len))


class AddressSchema(Schema):
    """A postal address as every service and the API take it (strict, bounded, trimmed)."""

    class Meta:
        unknown = RAISE

    first_name = _text(100)
    last_name = _text(100)
    company = _text(200, required=False)
    line1 = _text(200)
    line2 = _text(200, required=False)
    city = _text(100)
    region = _text(100, required=False)
    postal_code = _text(20, required=False)
    country = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z]{2}$", error="ISO 3166 alpha-2"))
    phone = _text(30, required=False)
    tax_id = SingleLine(allow_none=True, load_default=None, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9 .\-/]{1,31}$", error="2 to 32 letters, digits, spaces, . - /"),
        metadata={"description": "the tax id an invoice carries (NIF, RUT, VAT number)"})

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
        if "country" in data:  # absent from a partial update
            data["country"] = data["country"].upper()
        return data


class AddressPayload(_Payload):
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    company = fields.String(allow_none=True, load_default=None)
    line1 = fields.String(required=True)
    line2 = fields.String(allow_none=True, load_default=None)
    city = fields.String(required=True)
    region = fields.String(allow_none=True, load_default=None)
    postal_code = fields.String(allow_none=True, load_default=None)
    country = fields.String(required=True, validate=validate.Length(equal=2))
    phone = fields.String(allow_none=True, load_default=None)
    tax_id = fields.String(allow_none=True, load_default=None)


class OrderLinePayload(_Payload):
    sku = fields.String(required=True)
    title = fields.String(required=True)
    quantity = fields.Integer(required=True, validate=validate.Range(min=1))
    unit_price = fields.Integer(required=True)
    line_total = fields.Integer(required=True)
    # The catalogue price when the customer's category price differed (the email shows it).
    list_price = fields.Integer(allow_none=True, load_default=None)
    price_source = fields.String(allow_none=True, load_default=None)


class OrderPlacedPayload(_Payload):
    order_id = fields.UUID(required=True)
    number = fields.String(required=True)
    customer_id = fields.UUID(allow_none=True, load_default=None)
    email = fields.Email(required=True)
    locale = fields.String(required=True)
    currency = fields.String(required=True, validate=validate.Length(equal=3))
    subtotal = fields.Integer(required=True)
    shipping_total = fields.Integer(required=True)
    total = fields.Integer(required=True)
    status = fields.String(required=True)
    payment_status = fields.String(required=True)
    payment_method = fields.String(allow_none=True, load_default=None)
    placed_at = fields.DateTime(required=True)
    lines = fields.List(fields.Nested(OrderLinePayload), required=True)
    shipping_address = fields.Nested(AddressPayload, allow_none=True, load_default=None)
    billing_address = fields.Nested(AddressPayload, allow_none=True, load_default=None)
    # A manual method's instructions (bank transfer details): the confirmation carries them.
    payment_instructions = fields.String(allow_none=True, load_default=None)
    notify_customer = fields.Boolean(load_default=True)
    # The guest's key to this order, sealed: it reaches the customer only by email, so
    # holding it proves the inbox (the checkout response never carries it).
    access_token_sealed = fields.String(allow_none=True, load_default=None)
    offer_account = fields.Boolean(load_default=False)
    # The email has an account: the confirmation invites the shopper to log in instead.
    account_exists = fields.Boolean(load_default=False)
    # "admin" for a manual order; with payment_link the email asks the customer to pay.
    channel = fields.String(load_default="storefront")
    payment_link = fields.Boolean(load_default=False)
    # The customer asked at checkout to keep the shipping address in their address book.
    save_shipping_address = fields.Boolean(load_default=False)


class OrderChangePayload(_Payload):
    """A change to one of an order's three states: who made it, from what, to what, and
    whether the customer should hear about it."""

    order_id = fields.UUID(required=True)
    number = fields.String(required=True)
    customer_id = fields.UUID(allow_none=True, load_default=None)
    email = fields.Email(required=True)
    locale = fields.String(required=True)
    currency = fields.String(required=True)
    total = fields.Integer(required=True)
    from_ = fields.String(data_key="from", allow_none=True, load_default=None)
    to = fields.String(required=True)
    actor = fields.String(required=True)
    notify_customer = fields.Boolean(required=True)
    comment = fields.String(allow_none=True, load_default=None)
    carrier = fields.String(allow_none=True, load_default=None)
    tracking_number = fields.String(allow_none=True, load_default=None)
    tracking_url = fields.String(allow_none=True, load_default=None)
    # What an email about the change needs: whom to greet, and (a guest's order) the sealed
    # access token its link opens the order with.
    first_name = fields.String(allow_none=True, load_default=None)
    access_token_sealed = fields.String(allow_none=True, load_default=None)
    # Payments: refunded so far, this change's refund (a partial refund may follow another:
    # then from and to are both partially_refunded), and a late payment's alert.
    refunded_total = fields.Integer(load_default=0)
    refund_amount = fields.Integer(allow_none=True, load_default=None)
    payment_alert = fields.String(allow_none=True, load_default=None)


# The order changes a customer is emailed about (field, new state): notify_customer on any
# other change is refused, never recorded as if something was sent.
CUSTOMER_EMAILED_CHANGES = frozenset({
    ("payment_status", "paid"), ("payment_status", "refunded"),
    ("payment_status", "partially_refunded"),
    ("fulfillment_status", "in_transit"), ("fulfillment_status", "delivered"),
    ("status", "canceled"),
})


class StoreSettingsChangedPayload(_Payload):
    changed = fields.Dict(required=True)
    actor = fields.String(required=True)


class AccountPayload(_Payload):
    account_id = fields.UUID(required=True)
    email = fields.Email(required=True)
    locale = fields.String(required=True)
    store_name = fields.String(load_default="")
    first_name = fields.String(allow_none=True, load_default=None)
    last_name = fields.String(allow_none=True, load_default=None)
    # The account's status as of this event (optional: added after version 1 shipped).
    status = fields.String(allow_none=True, load_default=None)


class AccountRegisteredPayload(AccountPayload):
    status = fields.String(required=True)
    # Sealed (messaging.keys.seal): the plaintext token exists only in the email. None when
    # the email is already proven (an account created from an order's emailed link).
    verify_token_sealed = fields.String(allow_none=True, load_default=None)


class PasswordResetRequestedPayload(AccountPayload):
    token_sealed = fields.String(required=True)
    expires_at = fields.DateTime(required=True)


class AccountInvitedPayload(AccountPayload):
    token_sealed = fields.String(required=True)
    expires_at = fields.DateTime(required=True)
    actor = fields.String(required=True)


class AccountStatusPayload(AccountPayload):
    status = fields.String(required=True)
    actor = fields.String(required=True)


class EmailChangeRequestedPayload(AccountPayload):
    new_email = fields.Email(required=True)
    # None when the new address already has an account: its owner gets a notice, no link.
    token_sealed = fields.String(allow_none=True, load_default=None)
    address_taken = fields.Boolean(load_default=False)


class EmailChangedPayload(AccountPayload):
    old_email = fields.Email(required=True)
    reverted = fields.Boolean(required=True)
    # Sealed link for the old address to undo the change; none once reverted.
    revert_token_sealed = fields.String(allow_none=True, load_default=None)


class PasswordChangedPayload(AccountPayload):
    reason = fields.String(required=True, validate=validate.OneOf(["reset", "change"]))


class CustomerPayload(_Payload):
    customer_id = fields.UUID(required=True)
    email = fields.Email(required=True)
    type = fields.String(required=True, validate=validate.OneOf(["guest", "registered"]))
    first_name = fields.String(allow_none=True, load_default=None)
    last_name = fields.String(allow_none=True, load_default=None)
    account_id = fields.UUID(allow_none=True, load_default=None)
    locale = fields.String(allow_none=True, load_default=None)


ERASED_DOMAIN = "erased.invalid"  # RFC 2606: no one's address, ever


def erased_email(subject_id: Any) -> str:
    """What an erased person's email becomes in every service: unique per record, the same
    for one customer everywhere (so the merchant's export still finds their orders)."""
    return f"erased-{subject_id}@{ERASED_DOMAIN}"


def is_erased_email(address: str) -> bool:
    return address.endswith(f"@{ERASED_DOMAIN}")


class CustomerErasedPayload(_Payload):
    """Every service forgets this person. The email travels sealed (messaging.keys.seal): the
    event outlives the erasure in the outbox and must not keep what it asks others to forget."""

    customer_id = fields.UUID(required=True)
    account_id = fields.UUID(allow_none=True, load_default=None)
    email_sealed = fields.String(required=True, validate=validate.Length(1, 1000))
    erased_at = fields.DateTime(required=True)
    deleted = fields.Boolean(load_default=False,
                             metadata={"description": "the record itself was deleted"})


class OrderAbandonedPayload(OrderChangePayload):
    # The recovery link's token, sealed: only the customer's email carries it in clear.
    recovery_token_sealed = fields.String(allow_none=True, load_default=None)


class OrderEmailCorrectedPayload(_Payload):
    """The merchant corrected a guest order's email: the order moves to that customer."""

    order_id = fields.UUID(required=True)
    number = fields.String(required=True)
    old_email = fields.Email(required=True)
    email = fields.Email(required=True)
    actor = fields.String(required=True)


class CustomerCategoriesPayload(_Payload):
    """A registered customer's categories, whole, after a change: orders prices by them. The
    version grows with every change of this customer's categories, so a consumer keeps the
    newest whatever order the events arrive in."""

    customer_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    category_ids = fields.List(fields.UUID(), required=True)
    version = fields.Integer(required=True, validate=validate.Range(min=1))


class CategoryDeletedPayload(_Payload):
    category_id = fields.UUID(required=True)
    actor = fields.String(load_default="staff")


@dataclass(frozen=True)
class EventContract:
    name: str
    source: str
    version: int
    schema: type[Schema]


CONTRACTS: dict[str, EventContract] = {
    c.name: c
    for c in [
        EventContract(STORE_SETTINGS_CHANGED, "identity", 1, StoreSettingsChangedPayload),
        EventContract(ACCOUNT_REGISTERED, "identity", 1, AccountRegisteredPayload),
        EventContract(ACCOUNT_EMAIL_VERIFIED, "identity", 1, AccountPayload),
        EventContract(PASSWORD_RESET_REQUESTED, "identity", 1, PasswordResetRequestedPayload),
        EventContract(PASSWORD_CHANGED, "identity", 1, PasswordChangedPayload),
        EventContract(ACCOUNT_INVITED, "identity", 1, AccountInvitedPayload),
        EventContract(EMAIL_CHANGE_REQUESTED, "identity", 1, EmailChangeRequestedPayload),
        EventContract(EMAIL_CHANGED, "identity", 1, EmailChangedPayload),
        EventContract(ACCOUNT_APPROVED, "identity", 1, AccountStatusPayload),
        EventContract(ACCOUNT_DISABLED, "identity", 1, AccountStatusPayload),
        EventContract(ACCOUNT_ENABLED, "identity", 1, AccountStatusPayload),
        EventContract(CUSTOMER_CREATED, "customers", 1, CustomerPayload),
        EventContract(CUSTOMER_UPDATED, "customers", 1, CustomerPayload),
        EventContract(CUSTOMER_ERASED, "customers", 1, CustomerErasedPayload),
        EventContract(CUSTOMER_CATEGORIES_CHANGED, "customers", 1, CustomerCategoriesPayload),
        EventContract(CATEGORY_DELETED, "customers", 1, CategoryDeletedPayload),
        EventContract(ORDER_PLACED, "orders", 1, OrderPlacedPayload),
        EventContract(ORDER_STATUS_CHANGED, "orders", 1, OrderChangePayload),
        EventContract(PAYMENT_STATUS_CHANGED, "orders", 1, OrderChangePayload),
        EventContract(FULFILLMENT_UPDATED, "orders", 1, OrderChangePayload),
        EventContract(ORDER_CANCELED, "orders", 1, OrderChangePayload),
        EventContract(ORDER_ABANDONED, "orders", 1, OrderAbandonedPayload),
        EventContract(ORDER_EMAIL_CORRECTED, "orders", 1, OrderEmailCorrectedPayload),
    ]
}


@cache
def _schema(contract: EventContract) -> Schema:
    return contract.schema()  # built once per contract: schemas are reusable


def contract_for(event_type: str) -> EventContract:
    try:
        return CONTRACTS[event_type]
    except KeyError:
        raise ValueError(f"no contract for event type {event_type!r}") from None


def build_envelope(
    event_type: str, payload: dict[str, Any], correlation_id: str | None = None
) -> Envelope:
    """Validate ``payload`` against its contract and wrap it in a JSON-safe envelope."""
    contract = contract_for(event_type)
    schema = _schema(contract)
    wire_payload = schema.dump(payload)
    errors = schema.validate(wire_payload)
    if errors:
        raise ValidationError(errors)
    return Envelope(
        event_type=event_type,
        source=contract.source,
        version=contract.version,
        payload=wire_payload,
        correlation_id=correlation_id,
    )


def load_payload(envelope: Envelope) -> dict[str, Any]:
    """The envelope's payload as Python values (UUIDs, datetimes), checked against its contract."""
    contract = contract_for(envelope.event_type)
    if envelope.version != contract.version:
        raise ValidationError({"version": [f"unsupported version {envelope.version}"]})
    return _schema(contract).load(envelope.payload)


def normalised_payload(envelope: Envelope) -> dict[str, Any]:
    """The payload checked against its contract and back in JSON-safe form, with every
    optional field present (a producer may leave out what the contract defaults)."""
    schema = _schema(contract_for(envelope.event_type))
    payload = load_payload(envelope)
    return schema.dump(payload)
