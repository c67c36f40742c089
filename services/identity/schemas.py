"""Identity's own wire formats: what only the service reads. Its RPC contract (what the
gateway sends and reads) is messaging/contracts/identity.py."""

from __future__ import annotations

from marshmallow import fields, validate

from messaging.contracts.identity import (
    StrictSchema,
    email_field,
    password_field,
)
from services.identity.domain import (
    STAFF_ROLES,
)


class StaffSchema(StrictSchema):
    email = email_field()
    password = password_field()
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
