"""Identity's RPC contract: the request and reply formats its entrypoints take and
answer, which the gateway imports too (nothing here imports a service)."""

from __future__ import annotations

from enum import StrEnum
from zoneinfo import available_timezones

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from messaging.contracts import LOCALES, MANUAL_PAYMENT_METHODS, PAYMENT_METHODS
from messaging.fields import EmailAddress, SingleLine, StrictBoolean


class IdentityError(StrEnum):
    """Every problem code identity answers with (its RPCs' ServiceError codes; the gateway
    adds its own and validation_failed)."""

    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_EXISTS = "account_exists"
    ACCOUNT_NOT_FOUND = "account_not_found"
    BUSY = "busy"
    CUSTOMER_ERASED = "customer_erased"
    EMAIL_TAKEN = "email_taken"
    ILLEGAL_TRANSITION = "illegal_transition"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    INVALID_TOKEN = "invalid_token"
    SESSION_NOT_FOUND = "session_not_found"
    SETTINGS_CONFLICT = "settings_conflict"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    UNKNOWN_ACTION = "unknown_action"


# How customers log in at checkout, who sees prices, staff roles: the values the API takes.
CUSTOMER_ACCOUNT_MODES = ("disabled", "optional", "required")
PRICES_VISIBLE = ("everyone", "logged_in")
STAFF_ROLES = ("owner", "staff")
PASSWORD_MAX_LENGTH = 256  # far above any real password; bounds the hashing work per request


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def email_field() -> EmailAddress:
    return EmailAddress(required=True, validate=validate.Length(max=254))


def password_field() -> fields.String:
    # Policy (minimum length, common passwords) is checked in domain.password_problems.
    return fields.String(required=True, validate=validate.Length(1, PASSWORD_MAX_LENGTH))


def _iana_time_zone(name: str) -> None:
    if name not in available_timezones():
        raise ValidationError("Not an IANA time zone (e.g. Europe/Madrid).")


class StoreSettingsSchema(Schema):
    customer_accounts = fields.String()
    require_approval = StrictBoolean()
    password_min_length = fields.Integer()
    password_min_classes = fields.Integer()
    locale = fields.String()
    currency = fields.String()
    store_name = fields.String()
    timezone = fields.String()
    store_address = fields.List(fields.String(), allow_none=True)
    reply_to = fields.String(allow_none=True)
    payment_methods = fields.List(fields.String())
    bank_transfer_instructions = fields.String(allow_none=True)
    prices_visible = fields.String()
    # What a store may offer (the admin's choices): manual methods are confirmed by the
    # merchant, provider methods go through the configured payment provider.
    payment_method_choices = fields.Function(lambda _settings: [
        {"method": method, "kind": "manual" if method in MANUAL_PAYMENT_METHODS else "provider"}
        for method in PAYMENT_METHODS], dump_only=True)


def _distinct(methods: list[str]) -> None:
    if len(set(methods)) != len(methods):
        raise ValidationError("Each method once.")


class StoreSettingsUpdateSchema(StrictSchema):
    customer_accounts = fields.String(validate=validate.OneOf(CUSTOMER_ACCOUNT_MODES))
    require_approval = StrictBoolean()
    password_min_length = fields.Integer(validate=validate.Range(8, 64))
    password_min_classes = fields.Integer(validate=validate.Range(0, 4))
    locale = fields.String(validate=validate.OneOf(LOCALES))
    currency = fields.String(validate=validate.Regexp(r"^[A-Z]{3}$"))
    store_name = SingleLine(validate=validate.Length(1, 100))
    timezone = fields.String(validate=_iana_time_zone,
                             metadata={"description": "IANA, e.g. Europe/Madrid: the store's "
                                                      "days in date filters and exports"})
    store_address = fields.List(SingleLine(validate=validate.Length(1, 100)),
                                validate=validate.Length(max=5), metadata={
                                    "description": "the sender's address on labels and "
                                                   "printouts, one line each"})
    reply_to = EmailAddress(allow_none=True, metadata={
        "description": "the shop's contact address: customers' replies to its emails go "
                       "there (Reply-To)"})
    payment_methods = fields.List(
        fields.String(validate=validate.OneOf(PAYMENT_METHODS)),
        validate=[validate.Length(min=1), _distinct], metadata={
            "description": "the methods checkout offers, in this order: bank_transfer, cash, "
                           "cheque (confirmed by the merchant), card (the payment provider)"})
    bank_transfer_instructions = fields.String(allow_none=True, validate=validate.Length(
        max=2000), metadata={"description": "what a bank transfer order shows and its "
                                            "confirmation email carries (IBAN, reference)"})
    prices_visible = fields.String(validate=validate.OneOf(PRICES_VISIBLE), metadata={
        "description": "everyone, or logged_in: visitors and guests see no prices and cannot "
                       "check out (a members-only or wholesale store; needs customer "
                       "accounts)"})


class InviteSchema(StrictSchema):
    """Who an account is for: what a merchant gives when inviting, and the start of a
    registration."""

    email = email_field()
    first_name = SingleLine(load_default=None, allow_none=True,
                               validate=validate.Length(max=100))
    last_name = SingleLine(load_default=None, allow_none=True,
                              validate=validate.Length(max=100))
    locale = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(LOCALES))

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["email"] = data["email"].strip().lower()
        return data


class RegisterSchema(InviteSchema):
    password = password_field()


class LoginSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(1, 254))
    password = password_field()


class ResetPasswordSchema(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(1, 200))
    password = password_field()


class ChangePasswordSchema(StrictSchema):
    current_password = password_field()
    new_password = password_field()


class EmailChangeSchema(StrictSchema):
    password = password_field()
    new_email = email_field()

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["new_email"] = data["new_email"].strip().lower()
        return data


class AccountSchema(Schema):
    id = fields.UUID()
    email = fields.String()
    status = fields.String()
    email_verified = StrictBoolean()
    locale = fields.String()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    created_at = fields.DateTime()


class SessionSchema(Schema):
    id = fields.UUID(attribute="family_id")
    created_at = fields.DateTime()
    last_used_at = fields.DateTime()
    user_agent = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    current = StrictBoolean()


class TokensSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    refresh_token = fields.String(required=True)
    session_id = fields.UUID(required=True)


class SessionListSchema(Schema):
    items = fields.List(fields.Nested(SessionSchema), required=True)


class PaymentMethodSchema(Schema):
    method = fields.String(required=True, metadata={
        "description": "send as payment_method at checkout"})
    kind = fields.String(required=True, metadata={
        "description": "manual (the merchant confirms it) or provider (card: after checkout, "
                       "POST /orders/{id}/payment and send the shopper to redirect_url)"})
    instructions = fields.String(allow_none=True, required=True, metadata={
        "description": "what to tell the shopper (bank transfer details)"})


class PublicStoreSchema(Schema):
    payment_methods = fields.List(fields.Nested(PaymentMethodSchema), required=True)
    prices_visible = fields.String(required=True, metadata={
        "description": "everyone, or logged_in: show prices (and checkout) to logged-in "
                       "customers only"})
    customer_accounts = fields.String(required=True)
    require_approval = fields.Boolean(required=True, metadata={
        "description": "accounts wait for the merchant's approval before they can check out"})
    password_min_length = fields.Integer(required=True)
    password_min_classes = fields.Integer(required=True)
    locale = fields.String(required=True)
    currency = fields.String(required=True)
    store_name = fields.String(required=True)
    timezone = fields.String(required=True)


# --- RPC_ERRORS: held to the code by a test; python -m ops.error_catalogue rewrites it
RPC_ERRORS: dict[str, tuple[str, ...]] = {
    "account_for_email": (),
    "activate": ("invalid_token", "validation_failed",),
    "change_account_status": ("account_not_found", "illegal_transition", "unknown_action",),
    "change_password": ("account_not_found", "validation_failed",),
    "confirm_email_change": ("email_taken", "invalid_token",),
    "create_account_from_order": ("account_exists", "validation_failed",),
    "export_account": ("account_not_found",),
    "get_account": ("account_not_found",),
    "get_jwks": (),
    "get_store_settings": (),
    "invite_account": ("account_exists", "customer_erased", "validation_failed",),
    "list_sessions": ("account_not_found",),
    "login": ("account_disabled", "invalid_credentials", "too_many_attempts", "validation_failed",),
    "logout": (),
    "refresh": ("invalid_refresh_token",),
    "register": ("validation_failed",),
    "request_email_change": ("account_not_found", "too_many_attempts", "validation_failed",),
    "request_password_reset": (),
    "reset_password": ("invalid_token", "validation_failed",),
    "revert_email_change": ("email_taken", "invalid_token",),
    "revoke_other_sessions": ("account_not_found",),
    "revoke_session": ("account_not_found", "session_not_found",),
    "session_has_ended": (),
    "staff_login": (
        "account_disabled",
        "invalid_credentials",
        "too_many_attempts",
        "validation_failed",
    ),
    "update_store_settings": ("settings_conflict", "validation_failed",),
    "verify_email": ("invalid_token", "validation_failed",),
}
# --- end of RPC_ERRORS ---
