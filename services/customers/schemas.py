"""Customers' own wire formats: what only the service reads. Its RPC contract (what the
gateway sends and reads) is messaging/contracts/customers.py."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, post_load, validate

from messaging.contracts import LOCALES
from messaging.contracts.customers import (
    AddressSchemaOut,
    CategorySchema,
    CustomerSchema,
)
from messaging.fields import EmailAddress, SingleLine


class CustomerCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    email = EmailAddress(required=True, validate=validate.Length(max=254))
    first_name = SingleLine(load_default=None, allow_none=True,
                               validate=validate.Length(max=100))
    last_name = SingleLine(load_default=None, allow_none=True,
                              validate=validate.Length(max=100))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))
    locale = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(LOCALES))

    @post_load
    def normalise(self, data: dict, **kwargs: object) -> dict:
        data["email"] = data["email"].strip().lower()
        return data


class CustomerDetailSchema(CustomerSchema):
    addresses = fields.List(fields.Nested(AddressSchemaOut), required=True)
    categories = fields.List(fields.Nested(CategorySchema(only=("id", "name"))), required=True)


class InsightsQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    from_ = fields.DateTime(data_key="from")
    to = fields.DateTime()
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    limit = fields.Integer(load_default=10, validate=validate.Range(1, 50))
