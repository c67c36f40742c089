"""Saved carts and direct-buy links, through the gateway against the real system."""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import pytest
import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System

PASSWORD = "cart keeper passphrase"
ADDRESS = {"first_name": "Iker", "last_name": "Mora", "line1": "Calle Río 3",
           "city": "Bilbao", "country": "ES"}


@pytest.fixture(scope="module", autouse=True)
def optional_accounts(system: System, owner: dict[str, str]) -> None:
    requests.put(system.api("/admin/settings"), headers=owner,
                 json={"customer_accounts": "optional"}, timeout=10)
    time.sleep(1.2)  # both gateway workers see the setting


def register(system: System, smtp: SmtpSink) -> tuple[str, dict[str, str]]:
    email = f"cart-{uuid.uuid4().hex[:10]}@example.com"
    response = requests.post(system.api("/customers"), timeout=10,
                             json={"email": email, "password": PASSWORD})
    assert response.status_code == 202, response.text  # the same answer for a taken email
    [welcome] = smtp.wait_for_mail_to(email)
    token = re.search(r"verify-email\?token=([\w-]+)", welcome.text()).group(1)
    requests.post(system.api("/auth/verify-email"), timeout=10,
                  json={"token": token, "password": PASSWORD})
    return email, login(system, email)


def login(system: System, email: str) -> dict[str, str]:
    tokens = requests.post(system.api("/auth/login"), timeout=10,
                           json={"email": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return {"Authorization": f"Bearer {body['access_token']}",
            "X-Refresh": body["refresh_token"]}


def product(system: System, owner: dict[str, str], price: int = 1500,
            stock: int | None = None) -> str:
    sku = f"C-{uuid.uuid4().hex[:8]}"
    response = requests.post(system.api("/admin/products"), headers=owner, timeout=10, json={
        "sku": sku, "title": f"Cesta {sku}", "price": price, "stock": stock})
    assert response.status_code == 201, response.text
    return sku


def set_product(system: System, owner: dict[str, str], sku: str, **changes: Any) -> None:
    response = requests.patch(system.api(f"/admin/products/{sku}"), headers=owner,
                              json=changes, timeout=10)
    assert response.status_code == 200, response.text


def cart_of(system: System, me: dict[str, str]) -> dict[str, Any]:
    response = requests.get(system.api("/me/cart"), headers=me, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def lines_of(cart: dict[str, Any]) -> dict[str, int]:
    return {line["sku"]: line["quantity"] for line in cart["lines"]}


def test_the_saved_cart_follows_its_owner_and_no_one_else(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    a, b = product(system, owner), product(system, owner, price=250)
    email, me = register(system, smtp)
    assert cart_of(system, me)["lines"] == []
    put = requests.put(system.api("/me/cart"), headers=me, timeout=10, json={
        "lines": [{"sku": a, "quantity": 1}, {"sku": b, "quantity": 2},
                  {"sku": a, "quantity": 1}]})
    assert put.status_code == 200, put.text
    assert lines_of(put.json()) == {a: 2, b: 2}
    assert (put.json()["subtotal"], put.json()["currency"]) == (2 * 1500 + 2 * 250, "EUR")
    added = requests.post(system.api("/me/cart/lines"), headers=me, timeout=10,
                          json={"sku": b, "quantity": 3}).json()
    assert lines_of(added) == {a: 2, b: 5}

    # log out, log in again (as on another device): the same cart
    requests.post(system.api("/auth/logout"), headers=me, timeout=10,
                  json={"refresh_token": me["X-Refresh"]})
    laptop = login(system, email)
    assert lines_of(cart_of(system, laptop)) == {a: 2, b: 5}

    # another customer has their own empty cart and cannot touch this one
    _, stranger = register(system, smtp)
    assert cart_of(system, stranger)["lines"] == []
    requests.delete(system.api(f"/me/cart/lines/{a}"), headers=stranger, timeout=10)
    assert lines_of(cart_of(system, laptop)) == {a: 2, b: 5}
    # no token, a staff token: no cart
    assert requests.get(system.api("/me/cart"), timeout=10).status_code == 401
    assert requests.get(system.api("/me/cart"), headers=owner, timeout=10).status_code == 403

    removed = requests.delete(system.api(f"/me/cart/lines/{a}"), headers=laptop, timeout=10)
    assert removed.status_code == 200 and lines_of(removed.json()) == {b: 5}
    for bad in ({"lines": [{"sku": "NOPE-1", "quantity": 1}]},
                {"lines": [{"sku": b, "quantity": 0}]},
                {"lines": [{"sku": b, "quantity": 600}, {"sku": b, "quantity": 600}]},
                {"lines": [{"sku": b, "quantity": 1, "price": 1}]}):
        refused = requests.put(system.api("/me/cart"), headers=laptop, json=bad, timeout=10)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert lines_of(cart_of(system, laptop)) == {b: 5}  # a refused change changes nothing


def test_price_changes_and_unbuyable_lines_are_shown_not_dropped(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    cheap, gone, scarce = (product(system, owner, price=1000), product(system, owner),
                           product(system, owner, stock=5))
    _, me = register(system, smtp)
    requests.put(system.api("/me/cart"), headers=me, timeout=10, json={"lines": [
        {"sku": cheap, "quantity": 2}, {"sku": gone, "quantity": 1},
        {"sku": scarce, "quantity": 3}]})
    assert cart_of(system, me)["ready_for_checkout"] is True

    set_product(system, owner, cheap, price=1200)
    set_product(system, owner, gone, active=False)
    set_product(system, owner, scarce, stock=2)
    cart = cart_of(system, me)
    by_sku = {line["sku"]: line for line in cart["lines"]}
    assert len(by_sku) == 3
    assert (by_sku[cheap]["unit_price"], by_sku[cheap]["previous_unit_price"]) == (1200, 1000)
    assert by_sku[cheap]["line_total"] == 2400 and by_sku[cheap]["available"] is True
    assert (by_sku[gone]["available"], by_sku[gone]["issue"]) == (False, "inactive")
    assert (by_sku[scarce]["issue"], by_sku[scarce]["stock"]) == ("insufficient_stock", 2)
    assert cart["subtotal"] == 2400 and cart["ready_for_checkout"] is False

    # checking out this cart fails, and leaves it as it was
    refused = requests.post(system.api("/checkout"), headers=me, timeout=15, json={
        "cart": "saved", "shipping_address": ADDRESS})
    assert refused.status_code == 422 and refused.json()["code"] == "unknown_product"
    assert len(cart_of(system, me)["lines"]) == 3


def test_a_guest_cart_merges_at_login_capped_at_stock(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    scarce, plenty, sold_out = (product(system, owner, stock=5), product(system, owner),
                                product(system, owner, stock=0))
    _, me = register(system, smtp)
    requests.put(system.api("/me/cart"), headers=me, timeout=10,
                 json={"lines": [{"sku": scarce, "quantity": 3}]})
    merged = requests.post(system.api("/me/cart/merge"), headers=me, timeout=10, json={
        "lines": [{"sku": scarce, "quantity": 4}, {"sku": plenty, "quantity": 2},
                  {"sku": sold_out, "quantity": 1}, {"sku": "NEVER-SOLD", "quantity": 1}]})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert lines_of(body["cart"]) == {scarce: 5, plenty: 2, sold_out: 1}
    assert {a["sku"]: (a["requested"], a["quantity"], a["reason"])
            for a in body["adjustments"]} == {
        scarce: (7, 5, "capped_at_stock"), "NEVER-SOLD": (1, 0, "unknown_product")}
    flagged = {line["sku"]: line["issue"] for line in body["cart"]["lines"]}
    assert flagged[sold_out] == "out_of_stock" and flagged[plenty] is None
    # merging the same guest cart again (a retried request) cannot go past the stock
    again = requests.post(system.api("/me/cart/merge"), headers=me, timeout=10,
                          json={"lines": [{"sku": scarce, "quantity": 4}]}).json()
    assert lines_of(again["cart"])[scarce] == 5


def test_checkout_from_the_saved_cart_empties_it_once(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    sku = product(system, owner, stock=10)
    email, me = register(system, smtp)
    requests.put(system.api("/me/cart"), headers=me, timeout=10,
                 json={"lines": [{"sku": sku, "quantity": 3}]})
    body = {"cart": "saved", "shipping_address": ADDRESS}
    assert requests.post(system.api("/checkout"), json=body, timeout=15).status_code == 401
    both = requests.post(system.api("/checkout"), headers=me, timeout=15,
                         json={**body, "lines": [{"sku": sku, "quantity": 1}]})
    assert both.status_code == 422

    set_product(system, owner, sku, stock=2)  # not enough: the checkout fails...
    short = requests.post(system.api("/checkout"), headers=me, json=body, timeout=15)
    assert short.status_code == 409 and short.json()["code"] == "out_of_stock"
    assert lines_of(cart_of(system, me)) == {sku: 3}  # ...and the cart stays
    set_product(system, owner, sku, stock=10)

    # Two requests with one Idempotency-Key and one without, at the same moment: one order.
    key = {"Idempotency-Key": f"cart-{uuid.uuid4()}"}
    results: list[tuple[str, requests.Response]] = []

    def attempt(kind: str, headers: dict[str, str]) -> None:
        results.append((kind, requests.post(system.api("/checkout"), headers=headers,
                                            json=body, timeout=30)))

    threads = [threading.Thread(target=attempt, args=("keyed", {**me, **key})),
               threading.Thread(target=attempt, args=("keyed", {**me, **key})),
               threading.Thread(target=attempt, args=("plain", me))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    placed = [(kind, r) for kind, r in results if r.status_code in (200, 201)]
    ids = {r.json()["order"]["id"] for _, r in placed}
    assert len(ids) == 1, [(k, r.status_code, r.text) for k, r in results]  # one order
    for _, refused in (x for x in results if x[1].status_code not in (200, 201)):
        assert refused.json()["code"] in ("cart_empty", "idempotency_in_progress")
    [order_id] = ids
    assert cart_of(system, me)["lines"] == []
    # The key's retry answers as the key's request did: its order, or the empty cart it found.
    retry = requests.post(system.api("/checkout"), headers={**me, **key}, json=body,
                          timeout=15)
    if any(kind == "keyed" for kind, _ in placed):
        assert retry.status_code == 200 and retry.json()["order"]["id"] == order_id
    else:
        assert retry.status_code == 422 and retry.json()["code"] == "cart_empty"
    empty = requests.post(system.api("/checkout"), headers=me, json=body, timeout=15)
    assert empty.status_code == 422 and empty.json()["code"] == "cart_empty"

    order = requests.get(system.api(f"/me/orders/{order_id}"), headers=me, timeout=10).json()
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [(sku, 3)]
    assert order["email"] == email
    stock = next(p["stock"] for p in requests.get(system.api("/admin/products"), headers=owner,
                                                  timeout=10).json()["items"] if p["sku"] == sku)
    assert stock == 7


def test_direct_buy_links(system: System, owner: dict[str, str]) -> None:
    mug, tee = product(system, owner, price=900), product(system, owner, price=1900, stock=50)
    created = requests.post(system.api("/admin/buy-links"), headers=owner, timeout=10, json={
        "title": "Instagram: mug + tee", "lines": [{"sku": mug, "quantity": 2},
                                                   {"sku": tee, "quantity": 1}]})
    assert created.status_code == 201, created.text
    link = created.json()
    assert re.fullmatch(r"[2-9a-z]{8}", link["code"])
    assert link["url"] == f"http://shop.test/b/{link['code']}" and link["orders"] == 0

    opened = requests.get(system.api(f"/b/{link['code']}"), timeout=10)
    assert opened.status_code == 200, opened.text
    cart = opened.json()
    assert lines_of(cart) == {mug: 2, tee: 1} and cart["subtotal"] == 2 * 900 + 1900
    assert cart["ready_for_checkout"] and cart["code"] == link["code"]
    assert requests.get(system.api("/b/zzzzzzzz"), timeout=10).status_code == 404
    assert requests.post(system.api("/admin/buy-links"), headers=owner, timeout=10, json={
        "title": "bad", "lines": [{"sku": "NO-SUCH", "quantity": 1}]}).status_code == 422

    def buy(email: str, code: str) -> requests.Response:
        return requests.post(system.api("/checkout"), timeout=15, json={
            "email": email, "lines": [{"sku": line["sku"], "quantity": line["quantity"]}
                                      for line in cart["lines"]],
            "shipping_address": ADDRESS, "buy_link": code})

    first = buy(f"social-{uuid.uuid4().hex[:6]}@example.com", link["code"])
    second = buy(f"social-{uuid.uuid4().hex[:6]}@example.com", link["code"].upper())
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert buy("x@example.com", "unknown1").status_code == 422
    first_id = first.json()["order"]["id"]
    paid = requests.post(system.api(f"/admin/orders/{first_id}/payment-status"),
                         headers=owner, json={"payment_status": "paid"}, timeout=10)
    assert paid.status_code == 200, paid.text

    from_link = requests.get(system.api("/admin/orders"), headers=owner, timeout=10,
                             params={"buy_link": link["id"]}).json()
    assert {o["id"] for o in from_link["items"]} == {first.json()["order"]["id"],
                                                     second.json()["order"]["id"]}
    detail = requests.get(system.api(f"/admin/orders/{first.json()['order']['id']}"),
                          headers=owner, timeout=10).json()
    assert detail["buy_link_id"] == link["id"]

    def figures() -> dict[str, Any]:
        listed = requests.get(system.api("/admin/buy-links"), headers=owner, timeout=10)
        return next(item for item in listed.json()["items"] if item["id"] == link["id"])

    assert (figures()["orders"], figures()["paid_orders"], figures()["revenue"]) == (
        2, 1, 3700)

    # every order_placed published again (a redelivery): nothing is counted twice, neither
    # the link's figures nor the customers' order counts
    ids = [first.json()["order"]["id"], second.json()["order"]["id"]]
    republished = system.sql("orders", "UPDATE outbox SET published_at = NULL WHERE "
                             "event_type = 'order_placed' AND (body LIKE :a OR body LIKE :b) "
                             "RETURNING id", a=f"%{ids[0]}%", b=f"%{ids[1]}%")
    assert len(republished) == 2
    wait_for(lambda: not system.sql("orders", "SELECT id FROM outbox WHERE published_at IS "
                                    "NULL AND event_type = 'order_placed'"),
             message="the relay republished")
    buyer = first.json()["order"]["email"]
    time.sleep(1.5)  # the redelivered events reach the consumers, which must ignore them
    customers = requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                             params={"q": buyer}).json()["items"]
    assert [c["orders_count"] for c in customers] == [1]
    assert (figures()["orders"], figures()["revenue"]) == (2, 3700)

    off = requests.patch(system.api(f"/admin/buy-links/{link['id']}"), headers=owner,
                         json={"active": False}, timeout=10)
    assert off.status_code == 200 and off.json()["active"] is False
    gone = requests.get(system.api(f"/b/{link['code']}"), timeout=10)
    assert gone.status_code == 410 and gone.json()["code"] == "buy_link_disabled"
    assert requests.patch(system.api(f"/admin/buy-links/{link['id']}"), headers=owner,
                          json={"active": True}, timeout=10).json()["disabled_at"] is None
    assert requests.get(system.api(f"/b/{link['code']}"), timeout=10).status_code == 200
    assert requests.patch(system.api("/admin/buy-links/not-an-id"), headers=owner,
                          json={"active": False}, timeout=10).status_code == 404
