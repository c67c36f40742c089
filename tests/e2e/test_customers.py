"""The merchant's customers: list with filters, sorts and a cursor; categories; the customer
page; and the customer's own profile with marketing consent. Through the gateway."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System


def order(system: System, email: str, country: str, sku: str, quantity: int = 1,
          owner: dict[str, str] | None = None) -> dict[str, Any]:
    response = requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": sku, "quantity": quantity}],
        "shipping_address": {"first_name": email.split("@")[0].title(), "last_name": "Test",
                             "line1": "Street 1", "city": "City", "country": country}})
    assert response.status_code == 201, response.text
    placed = response.json()["order"]
    if owner:  # paid: spend counts what was paid
        paid = requests.post(system.api(f"/admin/orders/{placed['id']}/payment-status"),
                             headers=owner, json={"payment_status": "paid"}, timeout=10)
        assert paid.status_code == 200, paid.text
    return placed


@pytest.fixture(scope="module")
def shop(system: System, owner: dict[str, str]) -> dict[str, Any]:
    """Known customers under a domain of their own: who ordered what, from where."""
    domain = f"{uuid.uuid4().hex[:6]}.test"
    plan = {"alba": ("ES", [("MUG-LOGO", 1)]),
            "bruno": ("FR", [("TSHIRT-RED-M", 2), ("MUG-LOGO", 1)]),
            "carla": ("ES", [("TSHIRT-RED-M", 1), ("TSHIRT-RED-M", 1), ("MUG-LOGO", 3)]),
            "dario": ("PT", [("EBOOK-RECIPES", 1)])}
    for name, (country, orders) in plan.items():
        for sku, quantity in orders:
            order(system, f"{name}@{domain}", country, sku, quantity, owner)
    wait_for(lambda: listing(system, owner, q=domain)["total"] == 4 and all(
        c["orders_count"] == len(plan[c["email"].split("@")[0]][1])
        and c["total_spent"].get("EUR", 0) > 0
        for c in listing(system, owner, q=domain)["items"]), message="the figures")
    return {"domain": domain}


def listing(system: System, owner: dict[str, str], **query: Any) -> dict[str, Any]:
    response = requests.get(system.api("/admin/customers"), params=query, headers=owner,
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def names(result: dict[str, Any]) -> list[str]:
    return [c["email"].split("@")[0] for c in result["items"]]


def test_filters_and_sorts(system: System, owner: dict[str, str],
                           shop: dict[str, Any]) -> None:
    q = shop["domain"]
    by_orders = names(listing(system, owner, q=q, sort="-orders_count"))
    assert by_orders[:2] == ["carla", "bruno"] and sorted(by_orders[2:]) == ["alba", "dario"]
    by_spend = listing(system, owner, q=q, sort="-total_spent")["items"]
    assert [c["total_spent"]["EUR"] for c in by_spend] == sorted(
        (c["total_spent"]["EUR"] for c in by_spend), reverse=True)
    assert names(listing(system, owner, q=q, sort="name")) == ["alba", "bruno", "carla",
                                                               "dario"]
    assert sorted(names(listing(system, owner, q=q, country="es"))) == ["alba", "carla"]
    assert names(listing(system, owner, q=q, min_orders=3)) == ["carla"]
    assert listing(system, owner, q=q, type="registered")["total"] == 0
    assert listing(system, owner, q=q, has_account="false")["total"] == 4
    assert names(listing(system, owner, q=f"carla@{q}")) == ["carla"]
    bad = requests.get(system.api("/admin/customers"), params={"sort": "shoe_size"},
                       headers=owner, timeout=10)
    assert bad.status_code == 422


def test_the_cursor_walks_every_customer_once(system: System, owner: dict[str, str],
                                              shop: dict[str, Any]) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = listing(system, owner, q=shop["domain"], sort="-total_spent", limit=1,
                       **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 4
        seen += names(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["alba", "bruno", "carla", "dario"] and len(seen) == 4
    wrong = requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                         params={"cursor": "bm9wZQ", "sort": "name"})
    assert wrong.status_code == 422


def test_categories_and_the_customer_page(system: System, owner: dict[str, str],
                                          shop: dict[str, Any]) -> None:
    q = shop["domain"]
    ids = {c["email"].split("@")[0]: c["id"] for c in listing(system, owner, q=q)["items"]}
    created = requests.post(system.api("/admin/categories"), headers=owner, timeout=10,
                            json={"name": f"Wholesale {q}"})
    assert created.status_code == 201
    category = created.json()["id"]
    assert requests.post(system.api("/admin/categories"), headers=owner, timeout=10,
                         json={"name": f"Wholesale  {q}"}).status_code == 409
    for who in ("bruno", "carla", "carla"):  # twice: idempotent
        assert requests.put(system.api(f"/admin/categories/{category}/customers/{ids[who]}"),
                            headers=owner, timeout=10).status_code == 204
    assert sorted(names(listing(system, owner, q=q, category=category))) == ["bruno", "carla"]
    listed = {c["id"]: c for c in requests.get(system.api("/admin/categories"), headers=owner,
                                               timeout=10).json()["items"]}
    assert listed[category]["customers"] == 2

    page = requests.get(system.api(f"/admin/customers/{ids['carla']}"), headers=owner,
                        timeout=10).json()
    assert [c["name"] for c in page["customer"]["categories"]] == [f"Wholesale {q}"]
    assert len(page["recent_orders"]) == 3
    assert page["customer"]["country"] == "ES"

    requests.delete(system.api(f"/admin/categories/{category}/customers/{ids['bruno']}"),
                    headers=owner, timeout=10)
    assert names(listing(system, owner, q=q, category=category)) == ["carla"]
    renamed = requests.patch(system.api(f"/admin/categories/{category}"), headers=owner,
                             json={"name": f"Mayoristas {q}"}, timeout=10)
    assert renamed.json()["name"] == f"Mayoristas {q}"
    assert requests.delete(system.api(f"/admin/categories/{category}"), headers=owner,
                           timeout=10).status_code == 204
    assert listing(system, owner, q=q)["total"] == 4  # the customers stay
    assert requests.get(system.api(f"/admin/customers/{uuid.uuid4()}"), headers=owner,
                        timeout=10).status_code == 404


def test_my_profile_and_marketing_consent(system: System, smtp: SmtpSink,
                                          owner: dict[str, str]) -> None:
    requests.put(system.api("/admin/settings"), headers=owner,
                 json={"customer_accounts": "optional"}, timeout=10)
    time.sleep(1.2)
    email = f"me-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(system.api("/customers"), json={"email": email, "password":
                  "profile passphrase"}, timeout=10)
    smtp.wait_for_mail_to(email)
    tokens = requests.post(system.api("/auth/login"), timeout=10, json={
        "email": email, "password": "profile passphrase"}).json()
    me = {"Authorization": f"Bearer {tokens['access_token']}"}
    wait_for(lambda: requests.get(system.api("/me"), headers=me, timeout=10).json()["profile"],
             message="the profile")
    changed = requests.patch(system.api("/me"), headers=me, timeout=10, json={
        "first_name": "Nora", "last_name": "Vidal", "phone": "+34 611", "locale": "en",
        "accepts_marketing": True})
    assert changed.status_code == 200, changed.text
    profile = changed.json()
    assert profile["accepts_marketing"] and profile["marketing_consent_at"]
    withdrawn = requests.patch(system.api("/me"), headers=me, timeout=10,
                               json={"accepts_marketing": False}).json()
    assert withdrawn["marketing_withdrawn_at"] and withdrawn["marketing_consent_at"]
    assert requests.patch(system.api("/me"), headers=me, timeout=10,
                          json={"email": "x@y.z"}).status_code == 422
    # identity follows the profile: the account's name and language for its emails
    wait_for(lambda: requests.get(system.api("/me"), headers=me, timeout=10).json()[
        "first_name"] == "Nora", message="the account's name")
    assert requests.get(system.api("/me"), headers=me, timeout=10).json()["locale"] == "en"
    found = listing(system, owner, q=email, accepts_marketing="false")
    assert found["total"] == 1 and found["items"][0]["phone"] == "+34 611"


def test_figures_follow_payment_cancellation_and_refund(system: System,
                                                       owner: dict[str, str]) -> None:
    email = f"fig-{uuid.uuid4().hex[:8]}@example.com"
    first = order(system, email, "ES", "MUG-LOGO", 2)  # 25.00, awaiting payment
    second = order(system, email, "ES", "TSHIRT-RED-M", 1, owner)  # 19.90, paid

    def figures() -> tuple[int, int] | None:  # None: the first order not recorded yet
        found = listing(system, owner, q=email)["items"]
        return (found[0]["orders_count"], found[0]["total_spent"].get("EUR", 0)) \
            if found else None

    wait_for(lambda: figures() == (2, 1990), message="2 orders, 19.90 spent")

    def act(placed: dict[str, Any], what: str, **body: Any) -> None:
        response = requests.post(system.api(f"/admin/orders/{placed['id']}/{what}"),
                                 headers=owner, json=body, timeout=10)
        assert response.status_code == 200, response.text

    act(first, "payment-status", payment_status="paid")
    wait_for(lambda: figures() == (2, 4490), message="both paid")
    act(second, "payment-status", payment_status="refunded")
    wait_for(lambda: figures() == (2, 2500), message="the refund taken back out")
    act(second, "status", status="canceled")
    wait_for(lambda: figures() == (1, 2500), message="the canceled order no longer counts")
    [customer] = listing(system, owner, q=email)["items"]
    assert customer["last_order_status"] == "canceled"  # the second order was the newest


def test_insights(system: System, owner: dict[str, str], shop: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    def insights(**query: Any) -> dict[str, Any]:
        response = requests.get(system.api("/admin/customers/insights"), params=query,
                                headers=owner, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    now = insights()
    q = shop["domain"]
    assert now["best_by_orders"][0]["email"] == f"carla@{q}"  # three orders: the most
    assert now["best_by_spend"][0]["email"] == f"carla@{q}"  # 77.30 paid: the most
    assert now["best_by_spend"][0]["spent"] == 7730
    assert now["customers_ordering"] >= 4 and now["orders"] >= 7
    assert now["new_customers"] == now["customers_ordering"]  # all first ordered this week
    assert now["returning_customers"] == 0
    assert 0 < now["repeat_customer_rate"] <= 1
    assert now["guest_share"] + now["registered_share"] == pytest.approx(1)
    assert {"country": "ES", "customers": 2} in now["top_countries"] or any(
        c["country"] == "ES" and c["customers"] >= 2 for c in now["top_countries"])

    later = datetime.now(UTC) + timedelta(days=1)
    empty = insights(**{"from": later.isoformat(), "to": (later + timedelta(days=1)).isoformat()})
    assert (empty["customers_ordering"], empty["best_by_spend"]) == (0, [])
    assert requests.get(system.api("/admin/customers/insights"), params={"currency": "euro"},
                        headers=owner, timeout=10).status_code == 422
