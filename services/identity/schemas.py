"""Identity's wire formats."""

from marshmallow import RAISE, Schema, fields, validate

from services.identity.domain import CUSTOMER_ACCOUNT_MODES


class StoreSettingsSchema(Schema):
    customer_accounts = fields.String()
    require_approval = fields.Boolean()
    password_min_length = fields.Integer()
    locale = fields.String()
    currency = fields.String()
    store_name = fields.String()


class StoreSettingsUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    customer_accounts = fields.String(validate=validate.OneOf(CUSTOMER_ACCOUNT_MODES))
    require_approval = fields.Boolean()
    password_min_length = fields.Integer(validate=validate.Range(8, 64))
    locale = fields.String(validate=validate.OneOf(["es", "en"]))
    currency = fields.String(validate=validate.Regexp(r"^[A-Z]{3}$"))
    store_name = fields.String(validate=validate.Length(1, 100))
