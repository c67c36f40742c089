from types import SimpleNamespace

import pytest

from messaging.errors import ServiceError
from services.orders import domain
from services.orders import pricing_rules as rules


def product(price: int = 1000, active: bool = True, digital: bool = False,
            currency: str = "EUR") -> SimpleNamespace:
    return SimpleNamespace(title="T", price=price, active=active, digital=digital,
                           currency=currency)


@pytest.mark.parametrize(("machine", "current", "target", "changes"), [
    ("status", "pending_payment", "paid", True),
    ("status", "paid", "completed", True),
    ("status", "pending_payment", "canceled", True),
    ("status", "paid", "paid", False),
    ("payment_status", "pending", "paid", True),
    ("payment_status", "paid", "refunded", True),
    ("fulfillment_status", "unfulfilled", "requested", True),
    ("fulfillment_status", "in_transit", "delivered", True),
])
def test_legal_transitions_and_no_ops(machine: str, current: str, target: str,
                                      changes: bool) -> None:
    assert domain.check_transition(machine, current, target) is changes


@pytest.mark.parametrize(("machine", "current", "target"), [
    ("status", "completed", "canceled"),
    ("status", "canceled", "paid"),
    ("payment_status", "refunded", "paid"),
    ("fulfillment_status", "delivered", "in_transit"),
])
def test_illegal_transitions_are_409_naming_the_allowed_ones(machine: str, current: str,
                                                             target: str) -> None:
    with pytest.raises(ServiceError) as error:
        domain.check_transition(machine, current, target)
    assert error.value.status == 409
    assert error.value.extra["allowed"] == sorted(domain.MACHINES[machine][current])


def test_unknown_state_is_422() -> None:
    with pytest.raises(ServiceError) as error:
        domain.check_transition("status", "paid", "teleported")
    assert error.value.status == 422


def test_lines_are_priced_from_the_catalogue_and_merged() -> None:
    quantities = rules.merge_lines([{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 2},
                                     {"sku": "B", "quantity": 3}])
    assert quantities == {"B": 4, "A": 2}
    priced = rules.price_lines(quantities, {"A": product(500), "B": product(250, digital=True)})
    assert [(p.sku, p.quantity, p.line_total) for p in priced] == [("A", 2, 1000),
                                                                  ("B", 4, 1000)]
    assert rules.needs_shipping(priced)
    assert not rules.needs_shipping([p for p in priced if p.digital])


def test_unknown_inactive_and_mixed_currency_products_are_refused() -> None:
    with pytest.raises(ServiceError) as error:
        rules.price_lines({"A": 1, "B": 1}, {"A": product(active=False)})
    assert error.value.code == "unknown_product"
    assert set(error.value.errors["lines"]) == {"A", "B"}
    with pytest.raises(ServiceError) as error:
        rules.price_lines({"A": 1, "B": 1}, {"A": product(), "B": product(currency="USD")})
    assert error.value.code == "mixed_currencies"


def test_request_fingerprint_covers_what_the_shopper_asked_for() -> None:
    asked = {"email": "a@b.c", "lines": [{"sku": "A", "quantity": 1}]}
    assert domain.request_fingerprint({**asked, "locale": "es", "idempotency_key": "k1"}) == \
        domain.request_fingerprint({"locale": "en", **asked, "idempotency_key": "k2"})
    assert domain.request_fingerprint(asked) != domain.request_fingerprint(
        {**asked, "lines": [{"sku": "A", "quantity": 2}]})


def order_in(status: str, payment: str, fulfillment: str, digital: bool = False
             ) -> SimpleNamespace:
    return SimpleNamespace(status=status, payment_status=payment,
                           fulfillment_status=fulfillment,
                           lines=[SimpleNamespace(digital=digital)])


def test_what_a_change_implies() -> None:
    pending = order_in("pending_payment", "pending", "unfulfilled")
    assert domain.follow_ups("payment_status", "paid", pending) == [("status", "paid")]
    digital = order_in("pending_payment", "pending", "unfulfilled", digital=True)
    assert domain.follow_ups("payment_status", "paid", digital) == [
        ("status", "paid"), ("status", "completed")]
    paid = order_in("paid", "paid", "in_transit")
    assert domain.follow_ups("fulfillment_status", "delivered", paid) == [
        ("status", "completed")]
    unpaid = order_in("pending_payment", "pending", "in_transit")
    assert domain.follow_ups("fulfillment_status", "delivered", unpaid) == []
    assert domain.follow_ups("status", "canceled", pending) == [
        ("fulfillment_status", "canceled")]
    shipped = order_in("paid", "paid", "in_transit")
    assert domain.follow_ups("status", "canceled", shipped) == []


def test_a_whole_email_is_told_from_a_fragment() -> None:
    assert domain.looks_like_email(" ana@example.com ")
    assert not domain.looks_like_email("ana@")
    assert not domain.looks_like_email("example.com")
    assert not domain.looks_like_email("ana garcia@x.es")


def stocked(price: int = 1000, stock: int | None = None, active: bool = True,
            currency: str = "EUR") -> SimpleNamespace:
    return SimpleNamespace(title="T", price=price, active=active, digital=False,
                           currency=currency, stock=stock)


def test_a_cart_is_priced_today_and_flags_what_cannot_be_bought() -> None:
    products = {"A": stocked(price=1200), "B": stocked(active=False), "C": stocked(stock=0),
                "D": stocked(stock=2)}
    cart = rules.price_cart([rules.WantedLine("A", 2, price_seen=1000),
                              rules.WantedLine("B", 1), rules.WantedLine("C", 1),
                              rules.WantedLine("D", 3), rules.WantedLine("Z", 1, title="Old")],
                             products)
    by_sku = {line["sku"]: line for line in cart["lines"]}
    assert len(cart["lines"]) == 5  # nothing dropped
    assert (by_sku["A"]["unit_price"], by_sku["A"]["previous_unit_price"],
            by_sku["A"]["line_total"], by_sku["A"]["issue"]) == (1200, 1000, 2400, None)
    assert [by_sku[s]["issue"] for s in "BCDZ"] == [
        "inactive", "out_of_stock", "insufficient_stock", "unknown_product"]
    assert by_sku["Z"]["title"] == "Old" and by_sku["Z"]["unit_price"] is None
    assert (cart["subtotal"], cart["item_count"], cart["ready_for_checkout"]) == (2400, 8, False)


def test_an_unchanged_price_shows_no_previous_price_and_mixed_currencies_block() -> None:
    cart = rules.price_cart([rules.WantedLine("A", 1, price_seen=1000)],
                             {"A": stocked(price=1000)})
    assert cart["lines"][0]["previous_unit_price"] is None and cart["ready_for_checkout"]
    mixed = rules.price_cart([rules.WantedLine("A", 1), rules.WantedLine("U", 1)],
                              {"A": stocked(), "U": stocked(currency="USD")})
    assert mixed["currency"] is None and not mixed["ready_for_checkout"]
    assert rules.price_cart([], {})["ready_for_checkout"] is False


def test_merge_adds_quantities_and_caps_at_stock() -> None:
    products = {"A": stocked(stock=5), "B": stocked(), "C": stocked(stock=0),
                "D": stocked(stock=10)}
    merged, adjustments = rules.merge_carts(
        {"A": 3, "D": 1}, {"A": 4, "B": 2, "C": 1, "X": 1, "D": 2}, products, 999)
    assert merged == {"A": 5, "B": 2, "C": 1, "D": 3}
    assert {a["sku"]: a["reason"] for a in adjustments} == {
        "A": "capped_at_stock", "X": "unknown_product"}
    capped, [why] = rules.merge_carts({"B": 990}, {"B": 20}, products, 999)
    assert capped == {"B": 999} and why["reason"] == "capped_at_maximum"


def test_fingerprint_unchanged_by_absent_new_fields() -> None:
    request = {"email": "a@b.es", "lines": [{"sku": "A", "quantity": 1}]}
    assert domain.request_fingerprint(request) == domain.request_fingerprint(
        {**request, "cart": None, "buy_link": None})
    assert domain.request_fingerprint(request) != domain.request_fingerprint(
        {**request, "buy_link": "abc"})


def test_daily_series_fills_days_without_orders() -> None:
    from datetime import date

    rows = [{"day": date(2026, 3, 2), "orders": 3, "paid_orders": 1, "revenue": 1990},
            {"day": "2026-03-04", "orders": 1, "paid_orders": 1, "revenue": 500}]  # SQLite
    series = domain.daily_series(rows, date(2026, 3, 1), date(2026, 3, 4))
    assert [d["date"] for d in series] == ["2026-03-01", "2026-03-02", "2026-03-03",
                                           "2026-03-04"]
    assert [d["orders"] for d in series] == [0, 3, 0, 1]
    assert [d["revenue"] for d in series] == [0, 1990, 0, 500]
    assert domain.daily_series([], date(2026, 3, 1), date(2026, 3, 1)) == [
        {"date": "2026-03-01", "orders": 0, "paid_orders": 0, "revenue": 0}]


def test_the_machines_move_between_exactly_the_contracts_states() -> None:
    """Customers counts orders and spend by the contract's lists: the machines here and the
    contract cannot drift apart silently."""
    from messaging import contracts

    assert set(domain.ORDER_TRANSITIONS) == set(contracts.ORDER_STATUSES)
    assert set(domain.PAYMENT_TRANSITIONS) == set(contracts.PAYMENT_PROGRESS)
    assert set(domain.FULFILLMENT_TRANSITIONS) == set(contracts.FULFILLMENT_STATUSES)
    rank = {state: index for index, state in enumerate(contracts.PAYMENT_PROGRESS)}
    for state, targets in domain.PAYMENT_TRANSITIONS.items():
        assert all(rank[target] > rank[state] for target in targets), state
    # only the ends without a sale are left uncounted
    for state in contracts.ENDED_UNSOLD_STATUSES:
        assert "completed" not in domain.ORDER_TRANSITIONS[state]
