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
