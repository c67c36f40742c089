"""Customer categories that change prices (issue #20), through the gateway with the real
services, RabbitMQ, PostgreSQL and SMTP: every kind of caller across every place a price is
computed, price lists changing under a cart, members-only prices, and the read model orders
keeps of who is in which category."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System
from tests.e2e.test_accounts import bearer, registered_account, set_accounts

EBOOK, TSHIRT = "EBOOK-RECIPES", "TSHIRT-RED-M"  # 9,00 and 19,90 in the catalogue
ADDRESS = {"first_name": "Marta", "last_name": "Sanz", "line1": "Calle Prado 4",
           "city": "Toledo", "country": "ES"}


def admin(system: System, owner: dict[str, str], method: str, path: str,
          **body: Any) -> requests.Response:
    return requests.request(method, system.api(f"/admin{path}"), headers=owner, timeout=15,
                            json=body if body else None)


def new_category(system: System, owner: dict[str, str], name: str, **pricing: Any) -> str:
    made = admin(system, owner, "POST", "/categories", name=f"{name} {time.time_ns()}")
    assert made.status_code == 201, made.text
    category = made.json()["id"]
    if pricing:
        prices = pricing.pop("prices", None)
        if pricing:
            set_ = admin(system, owner, "PUT", f"/categories/{category}/pricing", **pricing)
            assert set_.status_code == 200, set_.text
        if prices is not None:
            listed = admin(system, owner, "PUT", f"/categories/{category}/prices",
                           prices=prices)
            assert listed.status_code == 200, listed.text
    return category


def customer_record(system: System, owner: dict[str, str], email: str) -> str:
    def found() -> str | None:
        items = admin(system, owner, "GET", f"/customers?q={email}").json()["items"]
        return items[0]["id"] if items else None

    return wait_for(found, timeout=15, message=f"customer {email}")


def join(system: System, owner: dict[str, str], category: str, email: str) -> None:
    record = customer_record(system, owner, email)
    joined = admin(system, owner, "PUT", f"/categories/{category}/customers/{record}")
    assert joined.status_code in (200, 204), joined.text


def prices(system: System, headers: dict[str, str] | None = None) -> dict[str, dict]:
    items = requests.get(system.api("/products"), headers=headers or {}, timeout=10).json()
    return {p["sku"]: p for p in items["items"]}


def wait_for_price(system: System, headers: dict[str, str], sku: str,
                   price: int | None) -> dict[str, Any]:
    """A membership change reaches prices through an event: within a second or two."""
    started = time.monotonic()
    product = wait_for(lambda: (p := prices(system, headers)[sku])["price"] == price and p,
                       timeout=10, message=f"{sku} at {price}")
    took = time.monotonic() - started
    print(f"\nmembership change to price {price}: {took * 1000:.0f} ms")
    assert took < 5
    return product


@pytest.fixture(scope="module")
def shop(system: System, smtp: SmtpSink, owner: dict[str, str]) -> dict[str, Any]:
    """Categories and their members: a discount, a price list, both, and hidden prices."""
    set_accounts(system, owner, "optional")
    wholesale = new_category(system, owner, "Mayorista", discount_percent=20)
    vip = new_category(system, owner, "Tarifa VIP", prices=[{"sku": EBOOK, "price": 700}])
    hidden = new_category(system, owner, "Sin precios", price_display="hidden")
    people: dict[str, Any] = {"wholesale": wholesale, "vip": vip, "hidden": hidden}
    for who, categories in (("discount", [wholesale]), ("listed", [vip]),
                            ("both", [wholesale, vip]), ("hidden", [hidden]),
                            ("plain", [])):
        email, tokens = registered_account(system, smtp)
        for category in categories:
            join(system, owner, category, email)
        people[who] = {"email": email, "headers": bearer(tokens),
                       "id": requests.get(system.api("/me"), headers=bearer(tokens),
                                          timeout=10).json()["id"]}
    wait_for_price(system, people["discount"]["headers"], EBOOK, 720)
    wait_for_price(system, people["hidden"]["headers"], EBOOK, None)
    return people


def test_the_catalogue_at_each_callers_price(system: System, shop: dict[str, Any]) -> None:
    anonymous = prices(system)[EBOOK]
    assert (anonymous["price"], anonymous["list_price"], anonymous["price_source"]) == (
        900, None, "catalogue")
    assert prices(system, shop["plain"]["headers"])[EBOOK]["price"] == 900
    discount = prices(system, shop["discount"]["headers"])
    assert (discount[EBOOK]["price"], discount[EBOOK]["list_price"]) == (720, 900)
    assert discount[EBOOK]["price_source"] == shop["wholesale"]
    assert discount[TSHIRT]["price"] == 1592  # 19,90 less 20%, rounded half up
    listed = prices(system, shop["listed"]["headers"])
    assert (listed[EBOOK]["price"], listed[EBOOK]["price_source"]) == (700, shop["vip"])
    assert listed[TSHIRT]["price"] == 1990  # not on the list: the catalogue's
    both = prices(system, shop["both"]["headers"])
    assert (both[EBOOK]["price"], both[TSHIRT]["price"]) == (700, 1592)  # the lowest wins
    hidden = prices(system, shop["hidden"]["headers"])[EBOOK]
    assert (hidden["price"], hidden["price_source"]) == (None, None) or hidden["price"] is None


def test_checkout_cart_buy_link_and_manual_order_use_the_customers_price(
        system: System, owner: dict[str, str], shop: dict[str, Any]) -> None:
    member = shop["both"]["headers"]
    # the saved cart
    cart = requests.put(system.api("/me/cart"), headers=member, timeout=10,
                        json={"lines": [{"sku": EBOOK, "quantity": 2},
                                        {"sku": TSHIRT, "quantity": 1}]}).json()
    by_sku = {line["sku"]: line for line in cart["lines"]}
    assert (by_sku[EBOOK]["unit_price"], by_sku[EBOOK]["list_price"]) == (700, 900)
    assert cart["subtotal"] == 2 * 700 + 1592
    # checkout
    placed = requests.post(system.api("/checkout"), headers=member, timeout=15, json={
        "lines": [{"sku": EBOOK, "quantity": 2}, {"sku": TSHIRT, "quantity": 1}],
        "shipping_address": ADDRESS, "payment_method": "bank_transfer"})
    assert placed.status_code == 201, placed.text
    order = placed.json()["order"]
    lines = {line["sku"]: line for line in order["lines"]}
    assert (lines[EBOOK]["unit_price"], lines[EBOOK]["list_price"],
            lines[EBOOK]["price_source"]) == (700, 900, shop["vip"])
    assert (lines[TSHIRT]["unit_price"], lines[TSHIRT]["price_source"]) == (1592,
                                                                           shop["wholesale"])
    assert order["total"] == 2 * 700 + 1592
    # a guest (no token) pays the catalogue's price, whoever they say they are
    guest = requests.post(system.api("/checkout"), timeout=15, json={
        "email": shop["both"]["email"], "lines": [{"sku": EBOOK, "quantity": 1}],
        "payment_method": "bank_transfer"})
    assert guest.status_code == 201, guest.text
    assert guest.json()["order"]["lines"][0]["unit_price"] == 900
    # a buy link
    link = admin(system, owner, "POST", "/buy-links", title="Ebook",
                 lines=[{"sku": EBOOK, "quantity": 1}]).json()
    assert requests.get(system.api(f"/b/{link['code']}"), headers=member,
                        timeout=10).json()["lines"][0]["unit_price"] == 700
    assert requests.get(system.api(f"/b/{link['code']}"),
                        timeout=10).json()["lines"][0]["unit_price"] == 900
    # a recovery cart, from the member's canceled order
    canceled = admin(system, owner, "POST", f"/orders/{order['id']}/status", status="canceled")
    assert canceled.status_code == 200, canceled.text
    url = admin(system, owner, "GET", f"/orders/{order['id']}/recovery-url").json()["url"]
    token = url.rsplit("/", 1)[1]
    recovered = requests.get(system.api(f"/recover/{token}"), headers=member, timeout=10).json()
    assert {line["sku"]: line["unit_price"] for line in recovered["lines"]} == {
        EBOOK: 700, TSHIRT: 1592}
    # a manual order for the customer
    manual = admin(system, owner, "POST", "/orders", customer_id=shop["discount"]["id"],
                   lines=[{"sku": EBOOK, "quantity": 1}], payment_method="cash",
                   payment_processed=True)
    assert manual.status_code == 201, manual.text
    line = manual.json()["order"]["lines"][0]
    assert (line["unit_price"], line["list_price"]) == (720, 900)
    # what the merchant's export and printout say about it
    printed = admin(system, owner, "GET", f"/orders/{manual.json()['order']['id']}/print").text
    assert "9,00" in printed and "7,20" in printed


def test_a_hidden_price_member_sees_no_prices_and_cannot_buy(
        system: System, shop: dict[str, Any]) -> None:
    member = shop["hidden"]["headers"]
    assert prices(system, member)[EBOOK]["price"] is None
    cart = requests.put(system.api("/me/cart"), headers=member, timeout=10,
                        json={"lines": [{"sku": EBOOK, "quantity": 1}]}).json()
    assert (cart["lines"][0]["unit_price"], cart["lines"][0]["issue"]) == (None,
                                                                          "prices_hidden")
    refused = requests.post(system.api("/checkout"), headers=member, timeout=15, json={
        "lines": [{"sku": EBOOK, "quantity": 1}], "payment_method": "bank_transfer"})
    assert (refused.status_code, refused.json()["code"]) == (403, "prices_hidden")


def test_a_price_list_change_between_cart_and_checkout_is_said(
        system: System, owner: dict[str, str], shop: dict[str, Any]) -> None:
    member = shop["discount"]["headers"]
    cart = requests.put(system.api("/me/cart"), headers=member, timeout=10,
                        json={"lines": [{"sku": EBOOK, "quantity": 1}]}).json()
    assert cart["lines"][0]["unit_price"] == 720
    try:
        changed = admin(system, owner, "PUT", f"/categories/{shop['wholesale']}/pricing",
                        discount_percent=30)
        assert changed.status_code == 200, changed.text
        now = requests.get(system.api("/me/cart"), headers=member, timeout=10).json()
        assert (now["lines"][0]["unit_price"], now["lines"][0]["previous_unit_price"]) == (
            630, 720)
        placed = requests.post(system.api("/checkout"), headers=member, timeout=15, json={
            "cart": "saved", "payment_method": "bank_transfer"})
        assert placed.status_code == 201, placed.text
        line = placed.json()["order"]["lines"][0]
        assert (line["unit_price"], line["previous_unit_price"]) == (630, 720)
        # A storefront that sends the price it showed is told the same.
        shown = requests.post(system.api("/checkout"), headers=member, timeout=15, json={
            "lines": [{"sku": EBOOK, "quantity": 1, "price_seen": 720}],
            "payment_method": "bank_transfer"}).json()["order"]["lines"][0]
        assert (shown["unit_price"], shown["previous_unit_price"]) == (630, 720)
    finally:
        admin(system, owner, "PUT", f"/categories/{shop['wholesale']}/pricing",
              discount_percent=20)


def test_prices_for_logged_in_customers_only(system: System, owner: dict[str, str],
                                             shop: dict[str, Any]) -> None:
    def put(**body: Any) -> requests.Response:
        response = admin(system, owner, "PUT", "/settings", **body)
        time.sleep(1.2)  # the gateway's settings cache
        return response

    assert put(prices_visible="logged_in").status_code == 200
    try:
        assert requests.get(system.api("/store"), timeout=10).json()["prices_visible"] == \
            "logged_in"
        assert prices(system)[EBOOK]["price"] is None
        assert prices(system, shop["plain"]["headers"])[EBOOK]["price"] == 900
        guest = requests.post(system.api("/checkout"), timeout=15, json={
            "email": "visitor@example.com", "lines": [{"sku": EBOOK, "quantity": 1}]})
        assert (guest.status_code, guest.json()["code"]) == (401, "login_required")
        link = admin(system, owner, "POST", "/buy-links", title="Ebook again",
                     lines=[{"sku": EBOOK, "quantity": 1}]).json()
        anonymous_link = requests.get(system.api(f"/b/{link['code']}"), timeout=10).json()
        assert (anonymous_link["lines"][0]["unit_price"], anonymous_link["subtotal"]) == (
            None, None)
        # Members-only prices need accounts: turning them off is refused while it holds.
        refused = put(customer_accounts="disabled")
        assert (refused.status_code, refused.json()["code"]) == (422, "settings_conflict")
    finally:
        assert put(prices_visible="everyone").status_code == 200
    assert prices(system)[EBOOK]["price"] == 900


def test_category_deletion_and_erasure_clean_the_read_model(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    email, tokens = registered_account(system, smtp)
    category = new_category(system, owner, "Temporal", discount_percent=50,
                            prices=[{"sku": TSHIRT, "price": 100}])
    join(system, owner, category, email)
    wait_for_price(system, bearer(tokens), EBOOK, 450)
    assert admin(system, owner, "DELETE", f"/categories/{category}").status_code == 204
    wait_for_price(system, bearer(tokens), EBOOK, 900)
    assert system.sql("orders", "SELECT count(*) FROM category_prices WHERE category_id = :c",
                      c=category)[0][0] == 0
    assert system.sql("orders", "SELECT count(*) FROM category_pricing WHERE category_id = "
                                ":c", c=category)[0][0] == 0
    assert admin(system, owner, "GET", f"/categories/{category}/pricing").status_code == 404

    other = new_category(system, owner, "Antes de borrar", discount_percent=10)
    join(system, owner, other, email)
    wait_for_price(system, bearer(tokens), EBOOK, 810)
    account_id = requests.get(system.api("/me"), headers=bearer(tokens), timeout=10).json()["id"]
    record = customer_record(system, owner, email)
    erased = admin(system, owner, "POST", f"/customers/{record}/erase")
    assert erased.status_code in (200, 202), erased.text
    wait_for(lambda: system.sql("orders", "SELECT count(*) FROM customer_memberships WHERE "
                                "account_id = :a", a=account_id)[0][0] == 0, timeout=10,
             message="the erased customer's memberships gone from orders")


def test_the_pricing_routes_check_what_they_take(system: System, owner: dict[str, str],
                                                shop: dict[str, Any]) -> None:
    category = shop["vip"]
    for body in ({"discount_percent": 91}, {"discount_percent": -1},
                 {"price_display": "secret"}, {"discount_percent": "10"}):
        assert admin(system, owner, "PUT", f"/categories/{category}/pricing",
                     **body).status_code == 422, body
    for entries in ([{"sku": "NOPE", "price": 1}], [{"sku": EBOOK, "price": -5}],
                    [{"sku": EBOOK, "price": 1}, {"sku": EBOOK, "price": 2}]):
        assert admin(system, owner, "PUT", f"/categories/{category}/prices",
                     prices=entries).status_code == 422, entries
    listed = admin(system, owner, "GET", f"/categories/{category}/prices").json()["prices"]
    assert listed == [{"sku": EBOOK, "price": 700, "list_price": 900, "currency": "EUR",
                       "title": "Ebook de recetas"}]
    missing = "00000000-0000-4000-8000-000000000000"
    assert admin(system, owner, "GET", f"/categories/{missing}/pricing").status_code == 404
    assert requests.get(system.api(f"/admin/categories/{category}/prices"),
                        timeout=10).status_code == 401


# What each caller pays for the ebook (catalogue 9,00), wherever a price is computed. None:
# no price shown (and no checkout for that caller).
EXPECTED = {"anonymous": 900, "plain": 900, "discount": 720, "listed": 700, "both": 700,
            "hidden": None}


@pytest.fixture(scope="module")
def recovery_token(system: System, owner: dict[str, str]) -> str:
    placed = requests.post(system.api("/checkout"), timeout=15, json={
        "email": "recover-me@example.com", "lines": [{"sku": EBOOK, "quantity": 1}],
        "payment_method": "bank_transfer"}).json()["order"]
    assert admin(system, owner, "POST", f"/orders/{placed['id']}/status",
                 status="canceled").status_code == 200
    url = admin(system, owner, "GET", f"/orders/{placed['id']}/recovery-url").json()["url"]
    return url.rsplit("/", 1)[1]


@pytest.mark.parametrize("caller", list(EXPECTED))
def test_every_caller_everywhere(system: System, owner: dict[str, str], shop: dict[str, Any],
                                 recovery_token: str, caller: str) -> None:
    expected = EXPECTED[caller]
    headers = shop[caller]["headers"] if caller != "anonymous" else {}
    seen: dict[str, Any] = {"products": prices(system, headers)[EBOOK]["price"]}
    link = admin(system, owner, "POST", "/buy-links", title=f"Ebook {caller}",
                 lines=[{"sku": EBOOK, "quantity": 1}]).json()
    seen["buy link"] = requests.get(system.api(f"/b/{link['code']}"), headers=headers,
                                    timeout=10).json()["lines"][0]["unit_price"]
    recovered = requests.get(system.api(f"/recover/{recovery_token}"), headers=headers,
                             timeout=10).json()
    seen["recovery"] = recovered["lines"][0]["unit_price"]
    checkout_body: dict[str, Any] = {"lines": [{"sku": EBOOK, "quantity": 1}],
                                     "payment_method": "bank_transfer"}
    if caller == "anonymous":
        checkout_body["email"] = f"anon-{time.time_ns()}@example.com"
    placed = requests.post(system.api("/checkout"), headers=headers, timeout=15,
                           json=checkout_body)
    seen["checkout"] = placed.json()["order"]["lines"][0]["unit_price"] \
        if placed.status_code == 201 else (placed.status_code, placed.json()["code"])
    if caller != "anonymous":
        requests.put(system.api("/me/cart"), headers=headers, timeout=10, json={"lines": []})
        seen["cart"] = requests.post(system.api("/me/cart/lines"), headers=headers, timeout=10,
                                     json={"sku": EBOOK, "quantity": 1}
                                     ).json()["lines"][0]["unit_price"]
        requests.put(system.api("/me/cart"), headers=headers, timeout=10, json={"lines": []})
        merged = requests.post(system.api("/me/cart/merge"), headers=headers, timeout=10,
                               json={"lines": [{"sku": EBOOK, "quantity": 2}]}).json()
        seen["cart merged at login"] = merged["cart"]["lines"][0]["unit_price"]
        manual = admin(system, owner, "POST", "/orders", customer_id=shop[caller]["id"],
                       lines=[{"sku": EBOOK, "quantity": 1}], payment_method="cash")
        assert manual.status_code == 201, manual.text
        seen["manual order"] = manual.json()["order"]["lines"][0]["unit_price"]
    wanted = {place: expected for place in seen}
    if caller == "hidden":
        wanted["checkout"] = (403, "prices_hidden")
        # The merchant takes a hidden-price member's order, at the member's prices as if
        # shown: here the catalogue's, since the category hides without discounting.
        wanted["manual order"] = 900
    assert seen == wanted
