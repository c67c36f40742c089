"""Notifications' wire formats."""

from marshmallow import Schema, fields

from messaging.logs import mask_email


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
