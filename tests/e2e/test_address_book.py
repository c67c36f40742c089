"""A customer's address book and checkout prefill, through the gateway."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System

PASSWORD = "address book passphrase"
HOME = {"first_name": "Lucía", "last_name": "Sanz", "line1": "Calle Luna 5", "city": "Sevilla",
        "postal_code": "41001", "country": "es", "phone": "+34 600 000 000"}
WORK = {"first_name": "Lucía", "last_name": "Sanz", "company": "Taller", "line1": "Av. Sol 9",
        "city": "Málaga", "country": "ES"}


@pytest.fixture(scope="module", autouse=True)
def optional_accounts(system: System, owner: dict[str, str]) -> None:
    requests.put(system.api("/admin/settings"), headers=owner,
                 json={"customer_accounts": "optional"}, timeout=10)
    time.sleep(1.2)


def customer(system: System, smtp: SmtpSink, verify: bool = True) -> tuple[str, dict]:
    email = f"book-{uuid.uuid4().hex[:10]}@example.com"
    requests.post(system.api("/customers"), json={"email": email, "password": PASSWORD},
                  timeout=10)
    [welcome] = smtp.wait_for_mail_to(email)
    if verify:
        token = re.search(r"verify-email\?token=([\w-]+)", welcome.text()).group(1)
        requests.post(system.api("/auth/verify-email"), timeout=10,
                      json={"token": token, "password": PASSWORD})
    tokens = requests.post(system.api("/auth/login"), json={"email": email,
                                                            "password": PASSWORD},
                           timeout=10).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    wait_for(lambda: requests.get(system.api("/me/addresses"), headers=headers,
                                  timeout=10).status_code == 200 or not verify,
             message="the customer record")
    return email, headers


def test_addresses_and_their_defaults(system: System, smtp: SmtpSink) -> None:
    _, me = customer(system, smtp)
    book = system.api("/me/addresses")
    assert requests.get(book, headers=me, timeout=10).json() == {"items": []}
    home = requests.post(book, json=HOME, headers=me, timeout=10)
    assert home.status_code == 201, home.text
    home = home.json()
    assert (home["default_shipping"], home["default_billing"], home["country"]) == (
        True, True, "ES")
    work = requests.post(book, json={**WORK, "default_shipping": True}, headers=me,
                         timeout=10).json()
    items = {a["id"]: a for a in requests.get(book, headers=me, timeout=10).json()["items"]}
    assert items[work["id"]]["default_shipping"] and not items[home["id"]]["default_shipping"]
    assert items[home["id"]]["default_billing"] and not items[work["id"]]["default_billing"]

    moved = requests.patch(f"{book}/{work['id']}", json={"city": "Cádiz"}, headers=me,
                           timeout=10)
    assert moved.json()["city"] == "Cádiz" and moved.json()["default_shipping"] is True
    assert requests.patch(f"{book}/{work['id']}", json={"colour": "red"}, headers=me,
                          timeout=10).status_code == 422
    assert requests.delete(f"{book}/{home['id']}", headers=me, timeout=10).status_code == 204
    assert [a["id"] for a in requests.get(book, headers=me, timeout=10).json()["items"]] == [
        work["id"]]

    # another customer sees none of it, and cannot touch it
    _, stranger = customer(system, smtp)
    assert requests.patch(f"{book}/{work['id']}", json={"city": "X"}, headers=stranger,
                          timeout=10).status_code == 404
    assert requests.delete(f"{book}/{work['id']}", headers=stranger,
                           timeout=10).status_code == 404


def test_prefill_and_checkout_from_the_address_book(system: System, smtp: SmtpSink) -> None:
    email, me = customer(system, smtp)
    saved = requests.post(system.api("/me/addresses"), json=HOME, headers=me, timeout=10).json()
    prefill = requests.get(system.api("/me/checkout-prefill"), headers=me, timeout=10).json()
    assert prefill["email"] == email
    assert prefill["shipping_address"]["id"] == saved["id"]
    assert prefill["billing_address"]["id"] == saved["id"]

    def checkout(body: dict[str, Any], headers: dict[str, str] | None = None
                 ) -> requests.Response:
        return requests.post(system.api("/checkout"), headers=headers or {}, timeout=15, json={
            "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 1}], **body})

    by_id = checkout({"shipping_address_id": saved["id"]}, me)
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["order"]["shipping_address"]["line1"] == "Calle Luna 5"

    with_save = checkout({"shipping_address": WORK, "save_address": True}, me)
    assert with_save.status_code == 201

    def saved_lines() -> list[str]:
        return sorted(a["line1"] for a in requests.get(
            system.api("/me/addresses"), headers=me, timeout=10).json()["items"])

    # customers keeps it when it records the order (order_placed), a moment later
    wait_for(lambda: len(saved_lines()) == 2, 15, message="the checkout address saved")
    assert saved_lines() == ["Av. Sol 9", "Calle Luna 5"]
    again = checkout({"shipping_address": WORK, "save_address": True}, me)
    assert again.status_code == 201
    # once customers has recorded the second order, the same address is not kept twice
    wait_for(lambda: system.sql("customers", "SELECT count(*) FROM customer_orders WHERE "
                                "order_id = :o", o=again.json()["order"]["id"])[0][0] == 1, 15)
    assert saved_lines() == ["Av. Sol 9", "Calle Luna 5"]

    _, stranger = customer(system, smtp)
    assert checkout({"shipping_address_id": saved["id"]}, stranger).status_code == 404
    assert checkout({"shipping_address_id": saved["id"]}).status_code == 422  # a guest
    assert checkout({"shipping_address_id": saved["id"], "shipping_address": HOME},
                    me).status_code == 422


def test_an_unproven_email_cannot_reach_a_guests_address_book(system: System,
                                                              smtp: SmtpSink) -> None:
    email = f"guest-{uuid.uuid4().hex[:8]}@example.com"
    assert requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": HOME}).status_code == 201
    smtp.wait_for_mail_to(email)
    requests.post(system.api("/customers"), json={"email": email, "password": PASSWORD},
                  timeout=10)
    tokens = requests.post(system.api("/auth/login"), json={"email": email,
                                                            "password": PASSWORD},
                           timeout=10).json()
    response = requests.get(system.api("/me/addresses"), timeout=10,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (response.status_code, response.json()["code"]) == (403, "verify_email_first")


def test_the_address_book_has_a_limit(system: System, smtp: SmtpSink) -> None:
    _, me = customer(system, smtp)
    session = requests.Session()
    for i in range(100):
        assert session.post(system.api("/me/addresses"), headers=me, timeout=10,
                            json={**HOME, "line2": f"Piso {i}"}).status_code == 201
    full = session.post(system.api("/me/addresses"), headers=me, json=HOME, timeout=10)
    assert (full.status_code, full.json()["code"]) == (422, "too_many_addresses")
