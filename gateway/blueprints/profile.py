"""The customer's address book and checkout prefill (owned by the customers service)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from gateway.auth import customer_required
from gateway.blueprints import json_body, rpc_call
from gateway.openapi import document
from services.customers.schemas import (
    AddressInputSchema,
    AddressListSchema,
    AddressSchemaOut,
    CheckoutPrefillSchema,
    ProfileSchema,
    ProfileUpdateSchema,
)

profile = Blueprint("profile", __name__)


@profile.patch("/me")
@document("Change my profile (names, phone, language, marketing consent)", tags=["me"],
          auth="customer", body=ProfileUpdateSchema, responses={200: ProfileSchema})
@customer_required
def update_profile() -> Any:
    return jsonify(rpc_call("customers", "update_profile", g.claims["sub"], json_body()))


@profile.get("/me/addresses")
@document("My addresses", tags=["me"], auth="customer", responses={200: AddressListSchema})
@customer_required
def list_addresses() -> Any:
    return jsonify(items=rpc_call("customers", "list_addresses", g.claims["sub"]))


@profile.post("/me/addresses")
@document("Add an address (the first one is both defaults)", tags=["me"], auth="customer",
          body=AddressInputSchema, responses={201: AddressSchemaOut})
@customer_required
def add_address() -> Any:
    response = jsonify(rpc_call("customers", "add_address", g.claims["sub"], json_body()))
    response.status_code = 201
    return response


@profile.patch("/me/addresses/<address_id>")
@document("Change an address, or make it a default", tags=["me"], auth="customer",
          body=AddressInputSchema(partial=True), responses={200: AddressSchemaOut})
@customer_required
def update_address(address_id: str) -> Any:
    return jsonify(rpc_call("customers", "update_address", g.claims["sub"], address_id,
                            json_body()))


@profile.delete("/me/addresses/<address_id>")
@document("Delete an address", tags=["me"], auth="customer", responses={204: None})
@customer_required
def delete_address(address_id: str) -> Response:
    rpc_call("customers", "delete_address", g.claims["sub"], address_id)
    return Response(status=204)


@profile.get("/me/checkout-prefill")
@document("What my checkout form starts with", tags=["me"], auth="customer",
          responses={200: CheckoutPrefillSchema})
@customer_required
def checkout_prefill() -> Any:
    account = rpc_call("identity", "get_account", g.claims["sub"])
    prefill = rpc_call("customers", "checkout_prefill", g.claims["sub"])
    return jsonify({"email": account["email"], **prefill,
                    "first_name": prefill["first_name"] or account.get("first_name"),
                    "last_name": prefill["last_name"] or account.get("last_name")})
