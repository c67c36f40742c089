"""The merchant runs orders: the three state machines, history, stock, events. Through HTTP."""

from __future__ import annotations

import io
import uuid
from typing import Any

import jwt
import requests
from pypdf import PdfReader

from harness.system import System

ADDRESS = {"first_name": "Olga", "last_name": "Ruiz", "line1": "Plaza 2", "city": "León",
           "country": "ES"}


def place(system: System, sku: str = "MUG-LOGO", quantity: int = 1,
          payment_method: str = "bank_transfer") -> dict[str, Any]:
    response = requests.post(system.api("/checkout"), timeout=15, json={
        "email": f"o-{uuid.uuid4().hex[:8]}@example.com", "payment_method": payment_method,
        "lines": [{"sku": sku, "quantity": quantity}], "shipping_address": ADDRESS})
    assert response.status_code == 201, response.text
    return response.json()["order"]


def change(system: System, owner: dict[str, str], order: dict[str, Any], what: str,
           **body: Any) -> requests.Response:
    return requests.post(system.api(f"/admin/orders/{order['id']}/{what}"), headers=owner,
                         json=body, timeout=10)


def stock(system: System, sku: str) -> int:
    [(value,)] = system.sql("orders", "SELECT stock FROM products WHERE sku = :s", s=sku)
    return value


def test_an_order_from_payment_to_delivery(system: System, owner: dict[str, str]) -> None:
    order = place(system)
    paid = change(system, owner, order, "payment-status", payment_status="paid",
                  comment="transfer received", notify_customer=True)
    assert paid.status_code == 200, paid.text
    body = paid.json()
    assert (body["payment_status"], body["status"]) == ("paid", "paid")
    assert [(h["field"], h["from"], h["to"]) for h in body["history"]][-2:] == [
        ("payment_status", "pending", "paid"), ("status", "pending_payment", "paid")]
    assert body["history"][-2]["actor"].startswith("staff:")
    assert body["history"][-2]["comment"] == "transfer received"

    again = change(system, owner, order, "payment-status", payment_status="paid")
    assert len(again.json()["history"]) == len(body["history"])  # the same state: a no-op
    illegal = change(system, owner, order, "payment-status", payment_status="pending")
    assert illegal.status_code == 409
    assert illegal.json()["allowed"] == ["partially_refunded", "refunded"]

    change(system, owner, order, "fulfillment", fulfillment_status="requested")
    shipped = change(system, owner, order, "fulfillment", fulfillment_status="in_transit",
                     carrier="Correos", tracking_number="PK123",
                     tracking_url="https://track.example/PK123", notify_customer=True).json()
    assert (shipped["carrier"], shipped["tracking_number"]) == ("Correos", "PK123")
    delivered = change(system, owner, order, "fulfillment",
                       fulfillment_status="delivered").json()
    assert (delivered["fulfillment_status"], delivered["status"]) == ("delivered", "completed")
    assert change(system, owner, order, "status", status="canceled").status_code == 409

    events = [row.event_type for row in system.sql(
        "orders", "SELECT event_type FROM outbox WHERE body LIKE :o ORDER BY id",
        o=f"%{order['id']}%")]
    assert events == ["order_placed", "payment_status_changed", "order_status_changed",
                      "fulfillment_updated", "fulfillment_updated", "fulfillment_updated",
                      "order_status_changed"]
    note = requests.post(system.api(f"/admin/orders/{order['id']}/notes"), headers=owner,
                         json={"comment": "gift wrap"}, timeout=10).json()
    assert note["history"][-1]["comment"] == "gift wrap"
    # Every staff action is a history row naming the staff user; what followed from one
    # (paid -> completed) is the system's.
    staff_id = jwt.decode(owner["Authorization"].split()[1],
                          options={"verify_signature": False})["sub"]
    actors = [(h["field"], h["to"], h["actor"]) for h in note["history"]]
    assert actors == [
        ("status", "pending_payment", "customer"),
        ("payment_status", "paid", f"staff:{staff_id}"), ("status", "paid", "system"),
        ("fulfillment_status", "requested", f"staff:{staff_id}"),
        ("fulfillment_status", "in_transit", f"staff:{staff_id}"),
        ("fulfillment_status", "delivered", f"staff:{staff_id}"),
        ("status", "completed", "system"), ("note", None, f"staff:{staff_id}")]


def test_canceling_puts_the_stock_back_once(system: System, owner: dict[str, str]) -> None:
    before = stock(system, "POSTER-A2")
    order = place(system, "POSTER-A2", 2)
    assert stock(system, "POSTER-A2") == before - 2
    canceled = change(system, owner, order, "status", status="canceled", comment="no stock")
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["fulfillment_status"] == "canceled"
    change(system, owner, order, "status", status="canceled")  # again: nothing more
    assert stock(system, "POSTER-A2") == before
    assert system.sql("orders", "SELECT count(*) FROM outbox WHERE event_type = "
                                "'order_canceled' AND body LIKE :o", o=f"%{order['id']}%"
                      )[0][0] == 1


def test_digital_and_card_orders(system: System, owner: dict[str, str]) -> None:
    ebook = place(system, "EBOOK-RECIPES")
    done = change(system, owner, ebook, "payment-status", payment_status="paid").json()
    assert done["status"] == "completed"  # nothing to ship: complete on payment
    nothing = change(system, owner, ebook, "fulfillment", fulfillment_status="requested")
    assert (nothing.status_code, nothing.json()["code"]) == (409, "nothing_to_ship")
    card = place(system, payment_method="card")
    refused = change(system, owner, card, "payment-status", payment_status="paid")
    assert (refused.status_code, refused.json()["code"]) == (409, "payment_not_manual")
    unknown = change(system, owner, card, "status", status="teleported")
    assert unknown.status_code == 422


def test_the_merchants_order_list(system: System, owner: dict[str, str]) -> None:
    order = place(system)
    change(system, owner, order, "status", status="canceled")

    def listing(**query: Any) -> dict[str, Any]:
        return requests.get(system.api("/admin/orders"), params=query, headers=owner,
                            timeout=10).json()

    assert order["id"] in [o["id"] for o in listing(status="canceled")["items"]]
    assert [o["id"] for o in listing(q=order["number"])["items"]] == [order["id"]]
    assert [o["id"] for o in listing(email=order["email"])["items"]] == [order["id"]]
    first = listing(limit=2)
    second = listing(limit=2, before=first["next_before"])
    assert not {o["id"] for o in first["items"]} & {o["id"] for o in second["items"]}
    assert first["total"] == second["total"] >= 4
    detail = requests.get(system.api(f"/admin/orders/{order['id']}"), headers=owner,
                          timeout=10).json()
    assert detail["history"][0]["to"] == "pending_payment"


def test_the_merchant_keeps_the_catalogue(system: System, owner: dict[str, str]) -> None:
    sku = f"SCARF-{uuid.uuid4().hex[:6]}"
    products = system.api("/admin/products")
    created = requests.post(products, headers=owner, timeout=10, json={
        "sku": sku, "title": "Bufanda", "price": 2490, "stock": 3})
    assert created.status_code == 201, created.text
    assert requests.post(products, headers=owner, timeout=10, json={
        "sku": sku, "title": "Again", "price": 1}).status_code == 409
    assert requests.post(products, headers=owner, timeout=10, json={
        "sku": "bad sku!", "title": "X", "price": -1}).status_code == 422
    public = [p["sku"] for p in requests.get(system.api("/products"), timeout=10).json()[
        "items"]]
    assert sku in public
    order = place(system, sku, 2)
    assert order["total"] == 4980

    cheaper = requests.patch(f"{products}/{sku}", headers=owner, timeout=10,
                             json={"price": 1990, "stock": 10})
    assert (cheaper.json()["price"], cheaper.json()["stock"]) == (1990, 10)
    detail = requests.get(system.api(f"/admin/orders/{order['id']}"), headers=owner,
                          timeout=10).json()
    assert detail["total"] == 4980  # an order keeps the price it was placed at

    requests.patch(f"{products}/{sku}", headers=owner, timeout=10, json={"active": False})
    assert sku not in [p["sku"] for p in requests.get(system.api("/products"),
                                                      timeout=10).json()["items"]]
    assert sku in [p["sku"] for p in requests.get(products, headers=owner,
                                                  timeout=10).json()["items"]]
    refused = requests.post(system.api("/checkout"), timeout=15, json={
        "email": "late@example.com", "lines": [{"sku": sku, "quantity": 1}],
        "shipping_address": ADDRESS})
    assert refused.json()["code"] == "unknown_product"
    assert requests.patch(f"{products}/NOPE-{sku}", headers=owner, timeout=10,
                          json={"price": 1}).status_code == 404
    assert requests.patch(f"{products}/{sku}", headers=owner, timeout=10,
                          json={"sku": "RENAMED"}).status_code == 422


def test_orders_export_as_csv(system: System, owner: dict[str, str]) -> None:
    import csv
    import io
    from datetime import UTC, datetime, timedelta

    placed = [place(system) for _ in range(3)]
    response = requests.get(system.api("/admin/orders/export"), headers=owner, timeout=30,
                            params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    numbers = [r["number"] for r in table]
    assert {o["number"] for o in placed} <= set(numbers)
    assert numbers == sorted(numbers, key=lambda n: int(n[1:]))  # oldest first
    mine = [r for r in table if r["number"] == placed[0]["number"]]
    assert [(r["sku"], r["quantity"], r["line_total"]) for r in mine] == [
        ("MUG-LOGO", "1", "12.50")]  # a row per order line
    canceled = requests.get(system.api("/admin/orders/export"), headers=owner, timeout=30,
                            params={"status": "canceled", "bom": "true"})
    assert canceled.content.startswith(b"\xef\xbb\xbf")
    assert all(r["status"] == "canceled" for r in csv.DictReader(
        io.StringIO(canceled.content.decode("utf-8-sig"))))
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    empty = requests.get(system.api("/admin/orders/export"), headers=owner, timeout=30,
                         params={"from": future,
                                 "to": (datetime.now(UTC) + timedelta(days=2)).isoformat()})
    assert empty.text.strip().count("\n") == 0  # the header only
    assert requests.get(system.api("/admin/orders/export"), headers=owner, timeout=30,
                        params={"format": "xlsx"}).status_code == 422


def test_export_across_a_month_boundary(system: System, owner: dict[str, str]) -> None:
    """Orders backdated around midnight of 1 February (UTC): each range gets exactly its own,
    from inclusive, to exclusive."""
    import csv
    import io

    from sqlalchemy import create_engine, text

    placed = [place(system) for _ in range(3)]
    when = ["2025-01-31T23:59:59+00:00", "2025-02-01T00:00:00+00:00",
            "2025-02-15T12:00:00+00:00"]
    engine = create_engine(system.database_urls["orders"])
    with engine.begin() as connection:
        for order, at in zip(placed, when, strict=True):
            connection.execute(text("UPDATE orders SET placed_at = :at WHERE id = :id"),
                               {"at": at, "id": order["id"]})
    engine.dispose()

    def exported(start: str, end: str) -> list[str]:
        response = requests.get(system.api("/admin/orders/export"), headers=owner, timeout=30,
                                params={"from": start, "to": end})
        assert response.status_code == 200, response.text
        return [row["number"] for row in csv.DictReader(io.StringIO(response.text))]

    numbers = [o["number"] for o in placed]
    assert exported("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z") == numbers[:1]
    assert exported("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z") == numbers[1:]
    assert exported("2025-01-31T00:00:00Z", "2025-02-02T00:00:00Z") == numbers[:2]


def test_print_and_label(system: System, owner: dict[str, str]) -> None:
    order = place(system)
    page = requests.get(system.api(f"/admin/orders/{order['id']}/print"), headers=owner,
                        timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert order["number"] in page.text and "Taza con logo" in page.text
    label = requests.get(system.api(f"/admin/orders/{order['id']}/label"), headers=owner,
                         params={"format": "html"}, timeout=10)
    assert "Plaza 2" in label.text and "León" in label.text

    # PDFs, read back: the text is there, the label is 100 x 150 mm.
    pdf = requests.get(system.api(f"/admin/orders/{order['id']}/print"), headers=owner,
                       params={"format": "pdf"}, timeout=10)
    assert pdf.headers["Content-Type"] == "application/pdf", pdf.text
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert order["number"] in text and "Taza con logo" in text and "Plaza 2" in text
    label_pdf = requests.get(system.api(f"/admin/orders/{order['id']}/label"), headers=owner,
                             timeout=10)
    assert label_pdf.headers["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(label_pdf.content))
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (100, 150)  # mm
    label_text = reader.pages[0].extract_text()
    assert "León" in label_text and order["number"] in label_text
    assert requests.get(system.api(f"/admin/orders/{order['id']}/label"), headers=owner,
                        params={"format": "docx"}, timeout=10).status_code == 422
    ebook = place(system, "EBOOK-RECIPES")
    assert requests.get(system.api(f"/admin/orders/{ebook['id']}/label"), headers=owner,
                        timeout=10).status_code == 409


def test_orders_and_paid_revenue_per_day(system: System, owner: dict[str, str]) -> None:
    def today() -> dict[str, Any]:
        response = requests.get(system.api("/admin/orders/stats"), headers=owner, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["days"]) == 30 and body["currency"] == "EUR"
        return body["days"][-1]

    before = today()
    paid, unpaid = place(system, quantity=2), place(system)
    assert change(system, owner, paid, "payment-status", payment_status="paid").ok
    after = today()
    assert after["orders"] - before["orders"] == 2
    assert after["paid_orders"] - before["paid_orders"] == 1
    assert after["revenue"] - before["revenue"] == paid["total"]
    assert unpaid["total"] > 0

    for query in ({"from": "2026-03-02", "to": "2026-03-01"},   # backwards
                  {"from": "2024-01-01", "to": "2026-01-01"},   # over a year
                  {"from": "yesterday"}, {"to": "2026-13-01"}, {"currency": "EUROS"}):
        response = requests.get(system.api("/admin/orders/stats"), params=query,
                                headers=owner, timeout=10)
        assert response.status_code == 422, (query, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
    assert requests.get(system.api("/admin/orders/stats"), timeout=10).status_code == 401


def test_the_order_detail_serves_its_rules_and_history_codes(
        system: System, owner: dict[str, str]) -> None:
    """The admin copies no rules: the detail says which states each machine may move to,
    whether the payment is set by hand and which changes email the customer; the service's
    own history entries are codes with params (the admin translates), a person's words stay
    in comment."""
    order = place(system)
    detail = requests.get(system.api(f"/admin/orders/{order['id']}"), headers=owner,
                          timeout=10).json()
    assert detail["allowed"] == {"status": ["canceled", "paid"],
                                 "payment_status": ["paid", "voided"],
                                 "fulfillment_status": ["canceled", "in_transit", "requested"]}
    assert detail["manual_payment"] is True
    assert detail["emailed_changes"]["fulfillment_status"] == ["delivered", "in_transit"]
    [placed] = detail["history"]
    assert (placed["code"], placed["params"], placed["comment"]) == ("placed", {}, None)
    paid = change(system, owner, order, "payment-status", payment_status="paid",
                  comment="transfer received").json()
    assert paid["allowed"]["payment_status"] == ["refunded"]  # partial: the refund form
    assert [(h["code"], h["params"], h["comment"]) for h in paid["history"][-2:]] == [
        (None, None, "transfer received"),
        ("follows", {"field": "payment_status", "state": "paid"}, None)]
    card = place(system, payment_method="card")
    card_detail = requests.get(system.api(f"/admin/orders/{card['id']}"), headers=owner,
                               timeout=10).json()
    assert card_detail["manual_payment"] is False
    assert card_detail["allowed"]["payment_status"] == []
    kinds = requests.get(system.api("/admin/notifications/kinds"), headers=owner,
                         timeout=10).json()
    assert {"kind": "order_shipped", "event": "fulfillment_updated",
            "switchable": True} in kinds
