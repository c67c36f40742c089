"""Notifications' RPC contract: the request and reply formats its entrypoints take and
answer, which the gateway imports too (nothing here imports a service)."""

from __future__ import annotations

from enum import StrEnum

from marshmallow import RAISE, Schema, fields, validate

from messaging.fields import StrictBoolean
from messaging.logs import mask_email


class NotificationsError(StrEnum):
    """Every problem code notifications answers with (its RPCs' ServiceError codes; the gateway
    adds its own and validation_failed)."""

    DELIVERY_NOT_FOUND = "delivery_not_found"
    RECIPIENT_ERASED = "recipient_erased"


# The emails a merchant may switch off (the settings' keys): notifications' email_kinds marks
# exactly these switchable (a test holds them together); account emails always go.
SWITCHABLE = ("order_confirmation", "payment_received", "payment_refunded", "order_shipped",
              "order_delivered", "order_canceled", "order_recovery", "order_payment_link")


class DeliverySchema(Schema):
    id = fields.UUID()
    event_id = fields.String()
    kind = fields.String()
    recipient = fields.Function(lambda d: mask_email(d.recipient))
    locale = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class DeliveryListSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema), required=True)
    next_before = fields.String(allow_none=True, required=True)


class DeliveryQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(["pending", "sending", "sent", "failed",
                                                    "bounced", "skipped"]))
    kind = fields.String(validate=validate.Length(max=50))
    recipient = fields.String(validate=validate.Length(max=254),
                              metadata={"description": "exact email address"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    before = fields.String(validate=validate.Length(max=500))


class EmailKindSchema(Schema):
    kind = fields.String(required=True)
    event = fields.String(required=True, metadata={"description": "the event it answers"})
    switchable = fields.Boolean(required=True, metadata={
        "description": "false: an account or security email, always sent"})


# Which emails the store sends: kind → on/off. Account emails always go, so are not here.
NotificationSettingsSchema = Schema.from_dict(
    {kind: StrictBoolean() for kind in SWITCHABLE}, name="NotificationSettings")


# --- RPC_ERRORS: held to the code by a test; python -m ops.error_catalogue rewrites it
RPC_ERRORS: dict[str, tuple[str, ...]] = {
    "export_deliveries": (),
    "get_settings": (),
    "list_deliveries": ("validation_failed",),
    "list_email_kinds": (),
    "resend": ("delivery_not_found", "recipient_erased",),
    "update_settings": ("validation_failed",),
}
# --- end of RPC_ERRORS ---
