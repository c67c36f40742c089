"""What orders answers with: its contract's schemas built once (building one per call, with
its fields' deep copies, showed in profiles), and the admin order view that fills the fields
the contract declares and orders works out (allowed changes, manual payment)."""

from __future__ import annotations

from marshmallow import fields

from messaging.contracts.orders import BuyLinkSchema, OrderSchema, ProductSchema, StartPaymentSchema
from messaging.contracts.orders_admin import (
    AdminOrderSchema,
    AdminOrderSummarySchema,
    FulfillmentChangeSchema,
    PaymentChangeSchema,
    StatusChangeSchema,
)
from services.orders import domain
from services.orders.schemas import OrderPageSchema

ORDER, ORDERS, PRODUCTS = OrderSchema(), OrderSchema(many=True), ProductSchema(many=True)
ORDER_PAGE = OrderPageSchema()


class AdminOrderView(AdminOrderSchema):
    """The merchant's order with what orders works out for it (the contract declares them):
    the states each machine may move to, and whether its payment is set by hand."""

    allowed = fields.Function(domain.allowed_changes)
    manual_payment = fields.Function(
        lambda order: order.payment_method in domain.MANUAL_PAYMENT_METHODS)


ADMIN_ORDER, ADMIN_ORDERS = AdminOrderView(), AdminOrderView(many=True)
ADMIN_SUMMARIES = AdminOrderSummarySchema(many=True)
BUY_LINK = BuyLinkSchema()
START_PAYMENT = StartPaymentSchema()
CHANGE_SCHEMAS = {"status": StatusChangeSchema(), "payment_status": PaymentChangeSchema(),
                  "fulfillment_status": FulfillmentChangeSchema()}
