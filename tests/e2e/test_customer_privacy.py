"""The merchant edits, deletes, exports and erases customers; bulk category membership; the
account status filter. Erasure is checked where it matters: every table of every service's
own database, read directly, holds no trace of the email afterwards."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, inspect, text

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System

PASSWORD = "una clave bastante larga 7"
ADDRESS = {"first_name": "Nora", "last_name": "Vidal", "line1": "Calle Luna 5",
           "city": "Sevilla", "country": "ES", "phone": "+34 600 111 222"}


@pytest.fixture(scope="module", autouse=True)
def optional_accounts(system: System, owner: dict[str, str]) -> None:
    response = requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                            json={"customer_accounts": "optional"})
    assert response.status_code == 200
    wait_for(lambda: requests.get(system.api("/store"), timeout=5).json()["customer_accounts"]
             == "optional", timeout=5, message="optional accounts")
    time.sleep(1.2)  # every gateway worker's settings cache


def find(system: System, owner: dict[str, str], email: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def listed() -> bool:
        items = requests.get(system.api("/admin/customers"), params={"q": email},
                             headers=owner, timeout=10).json()["items"]
        found.update(items[0] if items else {})
        return bool(items)

    wait_for(listed, message=f"{email} in the customer list")
    return found


def checkout(system: System, email: str, headers: dict[str, str] | None = None,
             address: dict[str, str] = ADDRESS) -> dict[str, Any]:
    response = requests.post(system.api("/checkout"), headers=headers or {}, timeout=15, json={
        "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": address})
    assert response.status_code == 201, response.text
    return response.json()["order"]


def verified_customer(system: System, smtp: SmtpSink, email: str) -> dict[str, str]:
    assert requests.post(system.api("/customers"), timeout=10, json={
        "email": email, "password": PASSWORD, "first_name": "Nora"}).status_code == 202
    welcome = smtp.wait_for_mail_to(email)[-1]
    token = re.search(r"verify-email\?token=([\w-]+)", welcome.text()).group(1)
    assert requests.post(system.api("/auth/verify-email"), timeout=10,
                         json={"token": token, "password": PASSWORD}).status_code == 200
    tokens = requests.post(system.api("/auth/login"), timeout=10,
                           json={"email": email, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def traces_of(system: System, needle: str) -> list[str]:
    """Every service table row that mentions ``needle`` (case-insensitive), as 'db.table'."""
    found = []
    for service, url in system.database_urls.items():
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                for table in inspect(connection).get_table_names():
                    for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                        if needle.lower() in str(tuple(row)).lower():
                            found.append(f"{service}.{table}")
        finally:
            engine.dispose()
    return sorted(set(found))


def assert_forgotten(system: System, needle: str, timeout: float = 20.0) -> None:
    """Wait for every service to forget ``needle``; on failure, say where it still is."""
    try:
        wait_for(lambda: not traces_of(system, needle), timeout=timeout,
                 message=f"no trace of {needle!r}")
    except AssertionError:
        raise AssertionError(f"{needle!r} still in {traces_of(system, needle)}") from None


def test_merchant_edits_a_customer(system: System, owner: dict[str, str]) -> None:
    email = f"edit-{uuid.uuid4().hex[:8]}@example.com"
    created = requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                            json={"email": email, "first_name": "Ana"})
    assert created.status_code == 201, created.text
    customer_id = created.json()["customer"]["id"]
    url = system.api(f"/admin/customers/{customer_id}")

    edited = requests.patch(url, headers=owner, timeout=10, json={
        "last_name": "Gil", "phone": "+34 600 000 001", "note": "Prefers morning delivery",
        "accepts_marketing": True, "email": email.replace("edit-", "Edited-")})
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["first_name"], body["last_name"], body["note"]) == (
        "Ana", "Gil", "Prefers morning delivery")
    assert body["email"] == email.replace("edit-", "edited-")  # normalised
    assert body["accepts_marketing"] and body["marketing_consent_at"]

    other = f"other-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(system.api("/admin/customers"), headers=owner, json={"email": other},
                  timeout=10)
    taken = requests.patch(url, headers=owner, json={"email": other}, timeout=10)
    assert taken.status_code == 409 and taken.json()["code"] == "customer_exists"
    for bad in ({"note": "x" * 2001}, {"shoe_size": 42}, {"locale": "fr"}, {"email": "nope"}):
        response = requests.patch(url, headers=owner, json=bad, timeout=10)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
    assert requests.patch(system.api(f"/admin/customers/{uuid.uuid4()}"), headers=owner,
                          json={"note": "x"}, timeout=10).status_code == 404


def test_an_accounts_email_is_the_customers_to_change(system: System, smtp: SmtpSink,
                                                       owner: dict[str, str]) -> None:
    email = f"acct-{uuid.uuid4().hex[:8]}@example.com"
    verified_customer(system, smtp, email)
    customer = find(system, owner, email)
    wait_for(lambda: find(system, owner, email)["account_status"] == "active",
             message="account status mirrored")
    refused = requests.patch(system.api(f"/admin/customers/{customer['id']}"), headers=owner,
                             json={"email": "new-" + email}, timeout=10)
    assert refused.status_code == 409 and refused.json()["code"] == "email_belongs_to_account"

    disabled = requests.post(system.api(f"/admin/customers/{customer['id']}/disable"),
                             headers=owner, timeout=10)
    assert disabled.status_code == 200, disabled.text
    wait_for(lambda: find(system, owner, email)["account_status"] == "disabled",
             message="disabled mirrored")
    listed = requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                          params={"account_status": "disabled", "q": email}).json()
    assert [c["email"] for c in listed["items"]] == [email]
    assert requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                        params={"account_status": "gone"}).status_code == 422


def test_delete_only_a_customer_without_orders(system: System, smtp: SmtpSink,
                                               owner: dict[str, str]) -> None:
    email = f"del-{uuid.uuid4().hex[:8]}@example.com"
    verified_customer(system, smtp, email)  # with an account, which goes too
    customer = find(system, owner, email)
    url = system.api(f"/admin/customers/{customer['id']}")
    assert requests.delete(url, headers=owner, timeout=10).status_code == 204
    assert requests.get(url, headers=owner, timeout=10).status_code == 404
    wait_for(lambda: requests.post(system.api("/auth/login"), timeout=10, json={
        "email": email, "password": PASSWORD}).status_code == 401, message="account deleted")
    assert_forgotten(system, email)

    buyer = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    checkout(system, buyer)
    kept = requests.delete(system.api(f"/admin/customers/{find(system, owner, buyer)['id']}"),
                           headers=owner, timeout=10)
    assert kept.status_code == 409 and kept.json()["code"] == "customer_has_orders"


def test_export_then_erase_everywhere(system: System, smtp: SmtpSink,
                                      owner: dict[str, str]) -> None:
    email = f"Privacy-{uuid.uuid4().hex[:8]}@Example.com"  # as typed, mixed case
    street = f"Calle {uuid.uuid4().hex[:8]} 5"  # this customer's alone
    address = {**ADDRESS, "line1": street}
    guest_order = checkout(system, email, address=address)  # a guest order, before the account
    smtp.wait_for_mail_to(email.lower())
    headers = verified_customer(system, smtp, email.lower())
    wait_for(lambda: requests.get(system.api("/me/addresses"), headers=headers,
                                  timeout=10).status_code == 200, message="linked record")
    assert requests.post(system.api("/me/addresses"), headers=headers, json=address,
                         timeout=10).status_code == 201
    account_order = checkout(system, email.lower(), headers, address)
    sku = account_order["lines"][0]["sku"]
    assert requests.post(system.api("/me/cart/lines"), headers=headers, timeout=10,
                         json={"sku": sku, "quantity": 2}).status_code == 200
    customer = find(system, owner, email.lower())
    url = system.api(f"/admin/customers/{customer['id']}")
    assert requests.patch(url, headers=owner, json={"note": f"Nora Vidal, {street}"},
                          timeout=10).status_code == 200
    wait_for(lambda: requests.get(url, headers=owner, timeout=10).json()["customer"]
             ["orders_count"] == 2, message="both orders counted")
    wait_for(lambda: len(smtp.to(email.lower())) >= 3, message="confirmations sent")

    exported = requests.get(url + "/export", headers=owner, timeout=15)
    assert exported.status_code == 200, exported.text
    assert "attachment" in exported.headers["Content-Disposition"]
    data = exported.json()
    assert data["customer"]["email"] == email.lower()
    assert data["customer"]["note"].startswith("Nora Vidal")
    assert [a["line1"] for a in data["addresses"]] == [street]
    assert {o["number"] for o in data["orders"]} == {guest_order["number"],
                                                     account_order["number"]}
    assert data["account"]["status"] == "active" and data["account"]["sessions"]
    assert "password_hash" not in str(data["account"])
    assert [(line["sku"], line["quantity"]) for line in data["cart"]["lines"]] == [(sku, 2)]
    assert len(data["emails"]) >= 3 and {"kind", "status", "sent_at"} <= set(data["emails"][0])
    staff = requests.get(system.api(f"/admin/customers/{customer['id']}/export"), timeout=10)
    assert staff.status_code == 401

    erased = requests.post(url + "/erase", headers=owner, timeout=10)
    assert erased.status_code == 202, erased.text
    again = requests.post(url + "/erase", headers=owner, timeout=10)
    assert again.status_code == 202 and again.json() == erased.json()  # idempotent

    wait_for(lambda: requests.post(system.api("/auth/login"), timeout=10, json={
        "email": email.lower(), "password": PASSWORD}).status_code == 401,
        message="login refused after erasure")
    assert_forgotten(system, email)
    assert_forgotten(system, street, timeout=5)
    wait_for(lambda: not system.sql("orders", "SELECT sku FROM cart_lines WHERE customer_id "
                                    "= :account", account=customer["account_id"]),
             message="the saved cart gone")

    # The store's books stay: same order numbers and totals, the figures still counted.
    for placed in (guest_order, account_order):
        order = requests.get(system.api(f"/admin/orders/{placed['id']}"), headers=owner,
                             timeout=10).json()
        assert (order["number"], order["total"]) == (placed["number"], placed["total"])
        assert order["email"].endswith("@erased.invalid")
    record = requests.get(url, headers=owner, timeout=10).json()["customer"]
    assert record["orders_count"] == 2 and record["erased_at"]
    assert record["first_name"] is None and record["addresses"] == []
    assert requests.patch(url, headers=owner, json={"note": "x"},
                          timeout=10).status_code == 409
    # The guest's order link and the old session are dead too.
    assert requests.get(system.api("/me"), headers=headers, timeout=10).status_code in (
        401, 403, 404)


def test_bulk_add_by_filter(system: System, owner: dict[str, str]) -> None:
    domain = f"{uuid.uuid4().hex[:6]}.bulk.test"
    for name in ("ana", "ben", "eva"):
        assert requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                             json={"email": f"{name}@{domain}"}).status_code == 201
    category = requests.post(system.api("/admin/categories"), headers=owner, timeout=10,
                             json={"name": f"Bulk {domain}"}).json()
    target = system.api(f"/admin/categories/{category['id']}/customers")
    first = requests.post(target, headers=owner, json={"q": f"a@{domain}"}, timeout=10)
    assert first.status_code == 200, first.text
    assert first.json() == {"added": 2, "customers": 2}  # ana, eva
    again = requests.post(target, headers=owner, json={"q": domain}, timeout=10).json()
    assert again == {"added": 1, "customers": 3}  # only ben is new
    members = requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                           params={"category": category["id"]}).json()
    assert members["total"] == 3
    for bad in ({"sort": "name"}, {"min_orders": -1}):
        assert requests.post(target, headers=owner, json=bad, timeout=10).status_code == 422
    missing = system.api(f"/admin/categories/{uuid.uuid4()}/customers")
    assert requests.post(missing, headers=owner, json={}, timeout=10).status_code == 404
