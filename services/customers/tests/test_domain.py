from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from services.customers import domain


def blank_customer() -> SimpleNamespace:
    return SimpleNamespace(orders_count=0, first_order_at=None, last_order_at=None,
                           last_order_status=None, last_payment_method=None, country=None,
                           city=None, first_name=None, last_name=None, phone=None, locale=None)


def order(placed_at: datetime, country: str = "ES", city: str = "Madrid") -> dict:
    return {"placed_at": placed_at, "status": "pending_payment", "payment_method": "cash",
            "locale": "es", "shipping_address": {"first_name": "Ana", "last_name": "G",
                                                 "country": country, "city": city,
                                                 "phone": "+34 600"}}


def test_normalise_email() -> None:
    assert domain.normalise_email("  Ana.Garcia@Example.COM ") == "ana.garcia@example.com"


def test_orders_fold_into_figures_and_late_events_keep_the_latest_address() -> None:
    customer = blank_customer()
    now = datetime.now(UTC)
    domain.apply_order_placed(customer, order(now, "ES", "Madrid"))
    domain.apply_order_placed(customer, order(now - timedelta(days=3), "FR", "Paris"))
    assert customer.first_order_at == now - timedelta(days=3)
    assert customer.last_order_at == now
    assert (customer.country, customer.city) == ("ES", "Madrid")  # the older one arrived late
    assert (customer.first_name, customer.phone, customer.locale) == ("Ana", "+34 600", "es")


def test_account_status_keeps_the_newest_report() -> None:
    customer = SimpleNamespace(account_id="a", account_status=None, account_status_at=None)
    now = datetime.now(UTC)
    domain.mirror_account_status(customer, "disabled", now)
    domain.mirror_account_status(customer, "active", now - timedelta(seconds=1))  # late
    assert customer.account_status == "disabled"
    domain.mirror_account_status(customer, "active", now + timedelta(seconds=1))
    assert customer.account_status == "active"
    guest = SimpleNamespace(account_id=None, account_status=None, account_status_at=None)
    domain.mirror_account_status(guest, "active", now)
    assert guest.account_status is None


def test_anonymise_keeps_figures_and_country_only() -> None:
    customer = blank_customer()
    now = datetime.now(UTC)
    domain.apply_order_placed(customer, order(now))
    customer.__dict__.update(
        id="c1", email="ana@example.com", note="VIP", account_id="a",
        account_status="active", account_status_at=now, last_seen_at=now,
        accepts_marketing=True, marketing_consent_at=now, marketing_withdrawn_at=None,
        orders_count=3)
    domain.anonymise(customer, now)
    assert customer.email == "erased-c1@erased.invalid"
    assert (customer.first_name, customer.last_name, customer.phone, customer.city,
            customer.note, customer.account_id) == (None,) * 6
    assert (customer.country, customer.orders_count, customer.erased_at) == ("ES", 3, now)
    assert customer.accepts_marketing is False and customer.marketing_consent_at is None


def test_a_late_payment_event_does_not_move_the_payment_back() -> None:
    # A refund handled before the "paid" event that was retried behind it (issue #19).
    row = SimpleNamespace(payment_status="pending", refunded=0)
    domain.apply_payment_change(row, "partially_refunded", 500)
    domain.apply_payment_change(row, "paid", 0)
    assert (row.payment_status, row.refunded) == ("partially_refunded", 500)
    domain.apply_payment_change(row, "refunded", 1250)
    domain.apply_payment_change(row, "partially_refunded", 500)
    assert (row.payment_status, row.refunded) == ("refunded", 1250)
