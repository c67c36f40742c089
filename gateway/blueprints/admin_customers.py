"""The merchant's customers and their categories (with the categories' prices): list, filter,
create, edit, invite, approve, erase, export (audience ``admin``; roles ``owner`` and ``staff``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from gateway.auth import staff_required
from gateway.blueprints import json_body, rpc_call, store_settings
from gateway.dates import DATE_BOUND, store_zone, with_ranges
from gateway.openapi import document
from gateway.problems import Problem
from gateway.schemas import (
    AdminCustomerCreatedSchema,
    AdminCustomerCreateSchema,
    BulkMembershipSchema,
    CustomerErasureSchema,
    CustomerExportSchema,
    CustomerPageSchema,
)
from messaging.contracts.customers import (
    CategoryInputSchema,
    CategoryListSchema,
    CategorySchema,
    CustomerFilterSchema,
    CustomerListQuerySchema,
    CustomerListSchema,
    CustomerSchema,
    CustomerUpdateSchema,
    InsightsSchema,
)
from messaging.contracts.identity import (
    AccountSchema,
)
from messaging.contracts.orders_admin import (
    CategoryPriceListOutSchema,
    CategoryPriceListSchema,
    CategoryPricingOutSchema,
    CategoryPricingSchema,
)

admin_customers = Blueprint("admin_customers", __name__)


def _actor() -> str:
    return f"staff:{g.claims['sub']}"


@admin_customers.post("/customers")
@document("Add a customer, optionally inviting them to an account", tags=["admin"],
          auth="staff", body=AdminCustomerCreateSchema, responses={201: AdminCustomerCreatedSchema})
@staff_required("owner", "staff")
def create_customer() -> Any:
    """Add a customer; with ``send_invite`` an account is created and the customer is emailed
    a link to choose a password."""
    body = json_body()
    send_invite = body.pop("send_invite", False)
    if not isinstance(send_invite, bool):
        raise Problem(422, "validation_failed", "send_invite must be true or false.",
                      errors={"send_invite": ["Not a valid boolean."]})
    # One shape either way: the customer record (made at once, or by the account_invited
    # event a moment later: null then), the account (null without an invitation), invited.
    if send_invite:
        invite_fields = {k: v for k, v in body.items() if k != "phone"}
        account = rpc_call("identity", "invite_account", invite_fields, _actor())
        response = jsonify(customer=None, account=account, invited=True)
    else:
        response = jsonify(customer=rpc_call("customers", "create_customer", body, _actor()),
                           account=None, invited=False)
    response.status_code = 201
    return response


def _account_of(customer_id: str) -> str:
    customer = rpc_call("customers", "get_customer", customer_id)
    if not customer.get("account_id"):
        raise Problem(409, "no_account", "This customer has no account.")
    return customer["account_id"]


@admin_customers.post("/customers/<customer_id>/invite")
@document("Invite a customer to an account", tags=["admin"], auth="staff",
          responses={200: AdminCustomerCreatedSchema})
@staff_required("owner", "staff")
def invite_customer(customer_id: str) -> Any:
    customer = rpc_call("customers", "get_customer", customer_id)
    if customer.get("erased_at"):
        raise Problem(410, "customer_erased", "This customer's data was erased: there is "
                      "no one to invite.")
    account = rpc_call("identity", "invite_account", {
        "email": customer["email"], "first_name": customer.get("first_name"),
        "last_name": customer.get("last_name"), "locale": customer.get("locale"),
    }, _actor())
    return jsonify(account=account, invited=True)


@admin_customers.post("/customers/<customer_id>/<any(approve, disable, enable):action>")
@document("Approve, disable or re-enable a customer's account", tags=["admin"],
          auth="staff", responses={200: AccountSchema})
@staff_required("owner", "staff")
def change_account_status(customer_id: str, action: str) -> Any:
    return jsonify(rpc_call("identity", "change_account_status", _account_of(customer_id),
                            action, _actor()))


@admin_customers.get("/customers")
@document("Customers: search, filter, sort, page", tags=["admin"], auth="staff",
          responses={200: CustomerListSchema},
          query={name: {"schema": {"type": "string"}} for name in CustomerListQuerySchema().fields})
@staff_required("owner", "staff")
def list_customers() -> Any:
    query = with_ranges(request.args, [("created_from", "created_to"),
                                       ("last_order_from", "last_order_to")],
                        store_zone(store_settings().get("timezone")))
    return jsonify(rpc_call("customers", "list_customers", query))


@admin_customers.get("/customers/insights")
@document("Best and repeat customers, new vs returning, guests vs accounts, top countries",
          tags=["admin"], auth="staff", responses={200: InsightsSchema},
          query={"from": {"schema": {"type": "string"}, "description": DATE_BOUND},
                 "to": {"schema": {"type": "string"}, "description": DATE_BOUND},
                 "currency": {"schema": {"type": "string"}},
                 "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 50}}},
          description="Default period: the last 90 days. Spend counts what was paid.")
@staff_required("owner", "staff")
def customer_insights() -> Any:
    query = with_ranges(request.args, [("from", "to")],
                        store_zone(store_settings().get("timezone")))
    return jsonify(rpc_call("customers", "insights", query))


@admin_customers.get("/customers/<customer_id>")
@document("A customer: profile, addresses, categories, figures, recent orders",
          tags=["admin"], auth="staff", responses={200: CustomerPageSchema})
@staff_required("owner", "staff")
def get_customer(customer_id: str) -> Any:
    customer = rpc_call("customers", "get_customer_detail", customer_id)
    orders = rpc_call("orders", "recent_orders_of", customer.get("account_id"),
                      customer["email"], 10)
    return jsonify(customer=customer, recent_orders=orders)


@admin_customers.patch("/customers/<customer_id>")
@document("Edit a customer: names, phone, language, the merchant's note, consent; the email "
          "while there is no account", tags=["admin"], auth="staff",
          body=CustomerUpdateSchema, responses={200: CustomerSchema})
@staff_required("owner", "staff")
def update_customer(customer_id: str) -> Any:
    return jsonify(rpc_call("customers", "update_customer", customer_id, json_body(),
                            _actor()))


@admin_customers.delete("/customers/<customer_id>")
@document("Delete a customer who never ordered, with their account", tags=["admin"],
          auth="staff", responses={204: None},
          description="A customer with orders is erased instead (409 customer_has_orders).")
@staff_required("owner", "staff")
def delete_customer(customer_id: str) -> Response:
    rpc_call("customers", "delete_customer", customer_id, _actor())
    return Response(status=204)


@admin_customers.post("/customers/<customer_id>/erase")
@document("Erase a customer's personal data in every service (idempotent)", tags=["admin"],
          auth="staff", responses={202: CustomerErasureSchema},
          description="Orders keep their numbers, lines and totals. The customer record is "
                      "anonymised at once; identity (the account can no longer log in), "
                      "orders and notifications follow through the customer_erased event.")
@staff_required("owner")
def erase_customer(customer_id: str) -> Any:
    response = jsonify(rpc_call("customers", "erase_customer", customer_id, _actor()))
    response.status_code = 202
    return response


@admin_customers.get("/customers/<customer_id>/export")
@document("Everything held about a customer, from every service, as JSON", tags=["admin"],
          auth="staff", responses={200: CustomerExportSchema})
@staff_required("owner")
def export_customer(customer_id: str) -> Any:
    held = rpc_call("customers", "export_customer", customer_id)
    customer = held["customer"]
    account = (rpc_call("identity", "export_account", customer["account_id"])
               if customer.get("account_id") else None)
    response = jsonify(
        exported_at=datetime.now(UTC).isoformat(), **held, account=account,
        orders=rpc_call("orders", "export_orders_of", customer.get("account_id"),
                        customer["email"]),
        cart=(rpc_call("orders", "get_cart", customer["account_id"])
              if customer.get("account_id") else None),
        emails=rpc_call("notifications", "export_deliveries", customer["email"]))
    response.headers["Content-Disposition"] = (
        f'attachment; filename="customer-{customer["id"]}.json"')
    response.headers["Cache-Control"] = "no-store"
    return response


@admin_customers.get("/categories")
@document("Customer categories, with how many customers each", tags=["admin"], auth="staff",
          responses={200: CategoryListSchema})
@staff_required("owner", "staff")
def list_categories() -> Any:
    return jsonify(items=rpc_call("customers", "list_categories"))


@admin_customers.post("/categories")
@document("Create a category", tags=["admin"], auth="staff", body=CategoryInputSchema,
          responses={201: CategorySchema})
@staff_required("owner", "staff")
def create_category() -> Any:
    response = jsonify(rpc_call("customers", "create_category", json_body()))
    response.status_code = 201
    return response


@admin_customers.patch("/categories/<category_id>")
@document("Rename a category", tags=["admin"], auth="staff", body=CategoryInputSchema,
          responses={200: CategorySchema})
@staff_required("owner", "staff")
def rename_category(category_id: str) -> Any:
    return jsonify(rpc_call("customers", "rename_category", category_id, json_body()))


@admin_customers.get("/categories/<category_id>/pricing")
@document("What a category does to its members' prices", tags=["admin"], auth="staff",
          responses={200: CategoryPricingOutSchema})
@staff_required("owner", "staff")
def get_category_pricing(category_id: str) -> Any:
    rpc_call("customers", "get_category", category_id)  # 404 for no such category
    return jsonify(rpc_call("orders", "get_category_pricing", category_id))


@admin_customers.put("/categories/<category_id>/pricing")
@document("Set a category's price display (shown, hidden) and discount", tags=["admin"],
          auth="staff", body=CategoryPricingSchema, responses={200: CategoryPricingOutSchema},
          description="A customer's price is the lowest of their categories' SKU prices and "
                      "of the catalogue price less their biggest discount; hidden in any of "
                      "their categories: no prices and no checkout (403 prices_hidden).")
@staff_required("owner", "staff")
def set_category_pricing(category_id: str) -> Any:
    body = json_body()
    rpc_call("customers", "get_category", category_id)
    return jsonify(rpc_call("orders", "set_category_pricing", category_id, body, _actor()))


@admin_customers.get("/categories/<category_id>/prices")
@document("A category's price list (per-SKU prices)", tags=["admin"], auth="staff",
          responses={200: CategoryPriceListOutSchema})
@staff_required("owner", "staff")
def get_category_prices(category_id: str) -> Any:
    rpc_call("customers", "get_category", category_id)
    return jsonify(rpc_call("orders", "get_category_prices", category_id))


@admin_customers.put("/categories/<category_id>/prices")
@document("Replace a category's price list", tags=["admin"], auth="staff",
          body=CategoryPriceListSchema, responses={200: CategoryPriceListOutSchema},
          description='{"prices": [{"sku", "price"}]} (minor units) replaces the whole list; '
                      "an empty list removes it. Unknown SKUs: 422.")
@staff_required("owner", "staff")
def set_category_prices(category_id: str) -> Any:
    body = json_body()
    rpc_call("customers", "get_category", category_id)
    return jsonify(rpc_call("orders", "set_category_prices", category_id, body, _actor()))


@admin_customers.delete("/categories/<category_id>")
@document("Delete a category (its customers stay)", tags=["admin"], auth="staff",
          responses={204: None})
@staff_required("owner", "staff")
def delete_category(category_id: str) -> Response:
    rpc_call("customers", "delete_category", category_id, _actor())
    return Response(status=204)


@admin_customers.post("/categories/<category_id>/customers")
@document("Put every customer a filter matches in a category", tags=["admin"], auth="staff",
          body=CustomerFilterSchema, responses={200: BulkMembershipSchema},
          description="The filters of GET /admin/customers; an empty body means everyone.")
@staff_required("owner", "staff")
def add_to_category_by_filter(category_id: str) -> Any:
    return jsonify(rpc_call("customers", "add_members_by_filter", category_id, json_body()))


@admin_customers.put("/categories/<category_id>/customers/<customer_id>")
@document("Put a customer in a category", tags=["admin"], auth="staff", responses={204: None})
@staff_required("owner", "staff")
def add_to_category(category_id: str, customer_id: str) -> Response:
    rpc_call("customers", "set_membership", category_id, customer_id, True)
    return Response(status=204)


@admin_customers.delete("/categories/<category_id>/customers/<customer_id>")
@document("Take a customer out of a category", tags=["admin"], auth="staff",
          responses={204: None})
@staff_required("owner", "staff")
def remove_from_category(category_id: str, customer_id: str) -> Response:
    rpc_call("customers", "set_membership", category_id, customer_id, False)
    return Response(status=204)
