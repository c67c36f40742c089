"""The customer's price rule, and orders' copy of memberships under redelivered and reordered
events (against a real SQLite database built from the models)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from messaging.errors import ServiceError
from services.orders import pricing
from services.orders import pricing_rules as rules
from services.orders.models import Base, CustomerMembership

WHOLESALE = rules.CategoryTerms("a-wholesale", discount_percent=20)
VIP = rules.CategoryTerms("b-vip", prices={"EBOOK": 700})
HIDDEN = rules.CategoryTerms("c-hidden", hidden=True)


def test_a_customer_price_is_the_lowest_of_their_categories() -> None:
    assert rules.customer_price("EBOOK", 900, []) == rules.CustomerPrice(900, 900, "catalogue")
    assert rules.customer_price("EBOOK", 900, [WHOLESALE]).price == 720
    assert rules.customer_price("EBOOK", 900, [VIP]) == rules.CustomerPrice(700, 900, "b-vip")
    assert rules.customer_price("EBOOK", 900, [WHOLESALE, VIP]).source == "b-vip"
    assert rules.customer_price("TSHIRT", 1990, [WHOLESALE, VIP]) == rules.CustomerPrice(
        1592, 1990, "a-wholesale")  # 1990 x 0.8 = 1592
    assert rules.customer_price("X", 1250, [rules.CategoryTerms("d", discount_percent=15)]
                                 ).price == 1063  # 10.625 rounds half up
    # the biggest discount, not the sum; a list price above the catalogue's never applies
    assert rules.customer_price("EBOOK", 900, [
        WHOLESALE, rules.CategoryTerms("e", discount_percent=10,
                                        prices={"EBOOK": 950})]).price == 720
    assert rules.customer_price("EBOOK", 900, [WHOLESALE, HIDDEN]) == rules.CustomerPrice(
        None, 900, "hidden")  # hidden in any category wins


def test_hidden_prices_cannot_be_bought() -> None:
    class Product:
        sku, title, titles, price, currency, digital, active = (
            "EBOOK", "Ebook", None, 900, "EUR", True, True)

    with pytest.raises(ServiceError) as refused:
        rules.price_lines({"EBOOK": 1}, {"EBOOK": Product()}, None, [HIDDEN])
    assert (refused.value.status, refused.value.code) == (403, "prices_hidden")
    line = rules.price_lines({"EBOOK": 2}, {"EBOOK": Product()}, None, [VIP])[0]
    assert (line.unit_price, line.list_price, line.price_source, line.line_total) == (
        700, 900, "b-vip", 1400)


@pytest.fixture
def session(tmp_path) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'orders.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_memberships_keep_the_newest_version_whatever_the_order(session: Session) -> None:
    account, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert pricing.apply_membership(session, account, [first], 1)
    assert pricing.apply_membership(session, account, [first, second], 3)
    # version 2 arrives late (it was retried), and version 3 again (a redelivery)
    assert not pricing.apply_membership(session, account, [second], 2)
    assert not pricing.apply_membership(session, account, [], 3)
    row = session.get(CustomerMembership, account)
    assert (sorted(row.category_ids), row.version) == (sorted([str(first), str(second)]), 3)
    assert pricing.apply_membership(session, account, [], 4)  # left every category
    assert pricing.terms_for(session, account) == []
    assert pricing.terms_for(session, None) == []
