"""What orders answers with: its wire schemas built once (building one per call, with its
fields' deep copies, showed in profiles), and the storefront's base for the links it makes."""

from __future__ import annotations

from messaging.links import StorefrontLinks
from services.orders.schemas import (
    AdminOrderSchema,
    AdminOrderSummarySchema,
    BuyLinkSchema,
    FulfillmentChangeSchema,
    OrderPageSchema,
    OrderSchema,
    PaymentChangeSchema,
    ProductSchema,
    StartPaymentSchema,
    StatusChangeSchema,
)

STOREFRONT = StorefrontLinks.from_environment()  # the pages links lead to

ORDER, ORDERS, PRODUCTS = OrderSchema(), OrderSchema(many=True), ProductSchema(many=True)
ORDER_PAGE = OrderPageSchema()
ADMIN_ORDER, ADMIN_ORDERS = AdminOrderSchema(), AdminOrderSchema(many=True)
ADMIN_SUMMARIES = AdminOrderSummarySchema(many=True)
BUY_LINK = BuyLinkSchema()
START_PAYMENT = StartPaymentSchema()
CHANGE_SCHEMAS = {"status": StatusChangeSchema(), "payment_status": PaymentChangeSchema(),
                  "fulfillment_status": FulfillmentChangeSchema()}
