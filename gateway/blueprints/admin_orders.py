"""The merchant's orders: list, detail with history, and changes to the three states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    request,
    stream_with_context,
)

from gateway.auth import staff_required
from gateway.blueprints import json_body, rpc_call, store_settings
from gateway.csp import printout
from gateway.dates import DATE_BOUND, date_range, store_zone, with_ranges
from gateway.export import csv_rows, printable
from gateway.openapi import document
from gateway.pdf import label_pdf, order_pdf
from gateway.policy import chosen_payment_method
from gateway.printouts import Printout
from gateway.problems import Problem
from messaging.contracts.orders import (
    BuyLinkInputSchema,
    BuyLinkListSchema,
    BuyLinkSchema,
    BuyLinkUpdateSchema,
    ProductListSchema,
    ProductSchema,
)
from messaging.contracts.orders_admin import (
    AdminOrderListSchema,
    AdminOrderQuerySchema,
    AdminOrderSchema,
    CheckoutLimitsSchema,
    FulfillmentChangeSchema,
    HoldWindowsSchema,
    ManualOrderCreatedSchema,
    ManualOrderSchema,
    NoteSchema,
    OrderEmailSchema,
    OrderStatsSchema,
    PaymentChangeSchema,
    ProductInputSchema,
    ProductUpdateSchema,
    RecoveryUrlSchema,
    RefundRequestSchema,
    StatusChangeSchema,
)
from messaging.errors import ServiceError
from messaging.fields import normalise_email_address_or_none

admin_orders = Blueprint("admin_orders", __name__)
EXPORT_PAGE = 1000  # orders per RPC while streaming an export: memory stays one page


def _actor() -> str:
    return f"staff:{g.claims['sub']}"


@admin_orders.get("/orders")
@document("Orders: filter by the three states, customer, dates; search number or email",
          tags=["admin orders"], auth="staff", responses={200: AdminOrderListSchema},
          query={name: {"schema": {"type": "string"}} for name in AdminOrderQuerySchema().fields})
@staff_required("owner", "staff")
def list_orders() -> Any:
    query = with_ranges(request.args, [("placed_from", "placed_to")],
                        store_zone(store_settings().get("timezone")))
    return jsonify(rpc_call("orders", "list_admin_orders", query))


@admin_orders.get("/orders/stats")
@document("Orders and paid revenue per day (UTC), for charts", tags=["admin orders"],
          auth="staff", responses={200: OrderStatsSchema},
          query={"from": {"schema": {"type": "string", "format": "date"}},
                 "to": {"schema": {"type": "string", "format": "date"}},
                 "currency": {"schema": {"type": "string"}}},
          description="Default: the last 30 days, in the store's currency; at most 366 days.")
@staff_required("owner", "staff")
def order_stats() -> Any:
    today = datetime.now(UTC).date()
    last = request.args.get("to") or today.isoformat()
    first = request.args.get("from") or (today - timedelta(days=29)).isoformat()
    currency = request.args.get("currency") or store_settings().get("currency", "EUR")
    if len(first) > 10 or len(last) > 10 or len(currency) > 3:
        raise Problem(422, "validation_failed", "Dates look like 2026-01-31; currency like EUR.")
    return jsonify(rpc_call("orders", "order_stats", first, last, currency.upper()))


@admin_orders.get("/orders/export")
@document("Orders placed in a date range, as CSV (streamed; default: the last 3 months)",
          tags=["admin orders"], auth="staff", responses={200: "text/csv"},
          query={"from": {"schema": {"type": "string"}, "description": DATE_BOUND},
                 "to": {"schema": {"type": "string"}, "description": DATE_BOUND},
                 "status": {"schema": {"type": "string"}},
                 "bom": {"schema": {"type": "boolean"},
                         "description": "start with a UTF-8 BOM (for spreadsheets)"},
                 "format": {"schema": {"type": "string", "enum": ["csv"]}}},
          description="One row per order line, the order's fields repeated.")
@staff_required("owner", "staff")
def export_orders() -> Response:
    now = datetime.now(UTC)
    zone = store_zone(store_settings().get("timezone"))
    start, end = date_range(request.args, "from", "to", zone)
    start, end = start or (end or now) - timedelta(days=90), end or now
    if end <= start:
        raise Problem(422, "validation_failed", "to must come after from.",
                      errors={"to": ["Before from."]})
    if request.args.get("format", "csv") != "csv":
        raise Problem(422, "validation_failed", "Only CSV is offered.",
                      errors={"format": ["Must be csv."]})
    correlation_id = g.get("request_id")
    rpc = current_app.extensions["rpc"]

    status = request.args.get("status") or None
    unknown = AdminOrderQuerySchema(only=("status",)).validate({"status": status}) \
        if status else {}
    if unknown:
        raise Problem(422, "validation_failed", "Unknown status.", errors=unknown)

    def page(after: str | None) -> dict[str, Any]:
        return rpc.call("orders", "export_page", start.isoformat(), end.isoformat(), after,
                        EXPORT_PAGE, status, correlation_id=correlation_id)

    bom = request.args.get("bom", "false").lower() in ("1", "true", "yes")
    # The file is named by the store's days it covers (an exclusive end: its last day).
    last_day = (end.astimezone(zone) - timedelta(microseconds=1)).date()
    filename = f"orders-{start.astimezone(zone):%Y%m%d}-{last_day:%Y%m%d}.csv"
    return Response(stream_with_context(csv_rows(page, bom)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@admin_orders.post("/orders")
@document("Take an order for a customer (a manual order)", tags=["admin orders"],
          auth="staff", body=ManualOrderSchema, responses={201: ManualOrderCreatedSchema},
          description="payment_processed: true marks it paid at once; otherwise the answer "
                      "and an email to the customer carry a payment link.")
@staff_required("owner", "staff")
def create_manual_order() -> Any:
    """An order for an account is the account's: it goes to the account's email (sent, or
    left out), never another one, so every service agrees on whose order it is."""
    body = json_body()
    if body.get("customer_id") is not None:
        try:
            account = rpc_call("identity", "get_account", str(body["customer_id"]))
        except ServiceError as exc:
            if exc.status != 404:
                raise
            raise Problem(422, "validation_failed", "No account has this id.",
                          errors={"customer_id": ["Not an account's id."]}) from None
        given = body.get("email")
        if given is not None and normalise_email_address_or_none(given) != account["email"]:
            raise Problem(422, "validation_failed",
                          "An order for an account goes to the account's email.",
                          errors={"email": [f"The account's email is {account['email']}; "
                                            "send it, or leave email out."]})
        body["email"] = account["email"]
    method = chosen_payment_method(store_settings(), body)
    body.update(payment_method=method["method"], payment_instructions=method["instructions"])
    response = jsonify(rpc_call("orders", "create_manual_order", body, _actor()))
    response.status_code = 201
    return response


@admin_orders.get("/orders/hold-windows")
@document("Minutes an unpaid order holds stock before it is abandoned, per payment method",
          tags=["admin orders"], auth="staff", responses={200: HoldWindowsSchema})
@staff_required("owner", "staff")
def get_hold_windows() -> Any:
    return jsonify(rpc_call("orders", "get_hold_windows"))


@admin_orders.put("/orders/hold-windows")
@document("Change the hold windows (owner only)", tags=["admin orders"], auth="staff",
          body=HoldWindowsSchema, responses={200: HoldWindowsSchema})
@staff_required("owner")
def put_hold_windows() -> Any:
    return jsonify(rpc_call("orders", "set_hold_windows", json_body(), _actor()))


@admin_orders.get("/orders/checkout-limits")
@document("What one checkout, and one shopper's unpaid orders together, may hold",
          tags=["admin orders"], auth="staff", responses={200: CheckoutLimitsSchema})
@staff_required("owner", "staff")
def get_checkout_limits() -> Any:
    return jsonify(rpc_call("orders", "get_checkout_limits"))


@admin_orders.put("/orders/checkout-limits")
@document("Change the checkout limits (owner only)", tags=["admin orders"], auth="staff",
          body=CheckoutLimitsSchema, responses={200: CheckoutLimitsSchema})
@staff_required("owner")
def put_checkout_limits() -> Any:
    return jsonify(rpc_call("orders", "set_checkout_limits", json_body(), _actor()))


@admin_orders.get("/buy-links")
@document("Direct-buy links, newest first, with their orders and revenue",
          tags=["buy links"], auth="staff", responses={200: BuyLinkListSchema})
@staff_required("owner", "staff")
def list_buy_links() -> Any:
    return jsonify(items=rpc_call("orders", "list_buy_links"))


@admin_orders.post("/buy-links")
@document("Create a direct-buy link for social pages (a short URL to a prefilled cart)",
          tags=["buy links"], auth="staff", body=BuyLinkInputSchema,
          responses={201: BuyLinkSchema})
@staff_required("owner", "staff")
def create_buy_link() -> Any:
    link = rpc_call("orders", "create_buy_link", json_body(), _actor())
    response = jsonify(link)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/admin/buy-links/{link['id']}"
    return response


@admin_orders.patch("/buy-links/<link_id>")
@document("Rename a direct-buy link, or switch it off (active: false) or on",
          tags=["buy links"], auth="staff", body=BuyLinkUpdateSchema,
          responses={200: BuyLinkSchema})
@staff_required("owner", "staff")
def update_buy_link(link_id: str) -> Any:
    return jsonify(rpc_call("orders", "update_buy_link", link_id, json_body(), _actor()))


@admin_orders.get("/orders/<order_id>/recovery-url")
@document("The recovery link of an abandoned or canceled order", tags=["admin orders"],
          auth="staff", responses={200: RecoveryUrlSchema})
@staff_required("owner", "staff")
def recovery_url(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "recovery_url", order_id))


@admin_orders.get("/orders/<order_id>")
@document("An order with its history (who changed what, when)", tags=["admin orders"],
          auth="staff", responses={200: AdminOrderSchema})
@staff_required("owner", "staff")
def get_order(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "get_admin_order", order_id))


def _change(order_id: str, field: str) -> Any:
    return jsonify(rpc_call("orders", "change_order", order_id, field, json_body(), _actor()))


def _output_format(default: str) -> str:
    chosen = request.args.get("format", default)
    if chosen not in ("html", "pdf"):
        raise Problem(422, "validation_failed", "format is html or pdf.",
                      errors={"format": ["Must be one of: html, pdf."]})
    return chosen


def _pdf(content: bytes, name: str) -> Response:
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


FORMAT_QUERY = {"format": {"schema": {"type": "string", "enum": ["html", "pdf"]}}}


@admin_orders.get("/orders/<order_id>/print")
@document("The order as a printable page (HTML), or a PDF (?format=pdf)",
          tags=["admin orders"], auth="staff", responses={200: "text/html"},
          query=FORMAT_QUERY)
@staff_required("owner", "staff")
def print_order(order_id: str) -> Response:
    chosen = _output_format("html")
    order = rpc_call("orders", "get_admin_order", order_id)
    if chosen == "pdf":
        return _pdf(order_pdf(order, Printout(store_settings())),
                    f"order-{order['number'].lstrip('#')}")
    return printout(printable("order_print.html.j2", order, Printout(store_settings())))


@admin_orders.get("/orders/<order_id>/label")
@document("A shipping label (100 x 150 mm PDF with a barcode of the order number; "
          "?format=html for a page)", tags=["admin orders"], auth="staff",
          responses={200: "application/pdf"}, query=FORMAT_QUERY)
@staff_required("owner", "staff")
def order_label(order_id: str) -> Response:
    chosen = _output_format("pdf")
    order = rpc_call("orders", "get_admin_order", order_id)
    if not order.get("shipping_address"):
        raise Problem(409, "nothing_to_ship", "This order has no shipping address.")
    if chosen == "pdf":
        return _pdf(label_pdf(order, Printout(store_settings())),
                    f"label-{order['number'].lstrip('#')}")
    return printout(printable("order_label.html.j2", order, Printout(store_settings())))


@admin_orders.patch("/orders/<order_id>")
@document("Correct a guest order's email (recorded in the history)", tags=["admin orders"],
          auth="staff", body=OrderEmailSchema, responses={200: AdminOrderSchema},
          description="An account's orders follow the account's email: 409 account_order.")
@staff_required("owner", "staff")
def correct_order_email(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "correct_order_email", order_id, json_body(), _actor()))


@admin_orders.post("/orders/<order_id>/status")
@document("Change the order status (pending_payment, paid, completed, canceled)",
          tags=["admin orders"], auth="staff", body=StatusChangeSchema,
          responses={200: AdminOrderSchema},
          description="An illegal move is a 409 naming the allowed ones; the same state "
                      "again changes nothing. Canceling puts the stock back.")
@staff_required("owner", "staff")
def change_status(order_id: str) -> Any:
    return _change(order_id, "status")


@admin_orders.post("/orders/<order_id>/payment-status")
@document("Change the payment status of a manual payment (cash, bank transfer, cheque)",
          tags=["admin orders"], auth="staff", body=PaymentChangeSchema,
          responses={200: AdminOrderSchema})
@staff_required("owner", "staff")
def change_payment_status(order_id: str) -> Any:
    return _change(order_id, "payment_status")


@admin_orders.post("/orders/<order_id>/refund")
@document("Refund a paid order, all of what is left or part of it", tags=["admin orders"],
          auth="staff", body=RefundRequestSchema, responses={200: AdminOrderSchema},
          description="Through the payment provider for a card payment; recorded as given "
                      "back by hand for a manual method. payment_status becomes "
                      "partially_refunded or refunded; the customer is emailed (unless "
                      "notify_customer is false). 409 refund_not_possible for an unpaid or "
                      "refunded order, 422 for more than is left.")
@staff_required("owner", "staff")
def refund(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "refund_order", order_id, json_body(), _actor()))


@admin_orders.post("/orders/<order_id>/fulfillment")
@document("Move fulfilment (requested, in_transit, delivered) with carrier and tracking",
          tags=["admin orders"], auth="staff", body=FulfillmentChangeSchema,
          responses={200: AdminOrderSchema})
@staff_required("owner", "staff")
def change_fulfillment(order_id: str) -> Any:
    return _change(order_id, "fulfillment_status")


@admin_orders.post("/orders/<order_id>/notes")
@document("Add a note to the order's history", tags=["admin orders"], auth="staff",
          body=NoteSchema, responses={200: AdminOrderSchema})
@staff_required("owner", "staff")
def add_note(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "add_note", order_id, json_body(), _actor()))


@admin_orders.get("/products")
@document("The whole catalogue, inactive products included", tags=["admin catalogue"],
          auth="staff", responses={200: ProductListSchema})
@staff_required("owner", "staff")
def list_products() -> Any:
    return jsonify(items=rpc_call("orders", "list_all_products"))


@admin_orders.post("/products")
@document("Add a product (price in minor units; stock null for unlimited)",
          tags=["admin catalogue"], auth="staff", body=ProductInputSchema,
          responses={201: ProductSchema})
@staff_required("owner", "staff")
def create_product() -> Any:
    response = jsonify(rpc_call("orders", "create_product", json_body()))
    response.status_code = 201
    return response


@admin_orders.patch("/products/<sku>")
@document("Change a product: title, price, stock, digital, active", tags=["admin catalogue"],
          auth="staff", body=ProductUpdateSchema(partial=True), responses={200: ProductSchema})
@staff_required("owner", "staff")
def update_product(sku: str) -> Any:
    return jsonify(rpc_call("orders", "update_product", sku, json_body()))
