"""The Stripe adapter against a local fake of Stripe's endpoints (real HTTP, Stripe's own
library), and webhooks signed here the way Stripe signs them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from harness.fake_stripe import FakeStripe, stripe_event
from messaging.errors import ServiceError
from services.orders.providers import PaymentRequest, StripeProvider, sign_payload

WEBHOOK_SECRET = "whsec_test_local"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def provider(fake: FakeStripe) -> StripeProvider:
    return StripeProvider(fake.secret_key, WEBHOOK_SECRET, api_base=fake.url)


def request(key: str = "pay-1-0") -> PaymentRequest:
    return PaymentRequest(order_id="6a8b0c1e-0000-4000-8000-000000000001", number="#1042",
                          email="ana@example.com", amount=2590, currency="EUR", locale="es",
                          success_url="http://shop.test/orders/1?payment=done",
                          cancel_url="http://shop.test/orders/1?payment=canceled",
                          idempotency_key=key)


def test_a_payment_starts_as_a_checkout_session(fake: FakeStripe,
                                                provider: StripeProvider) -> None:
    started = provider.start(request())
    assert started.session_id.startswith("cs_test_")
    assert started.redirect_url == f"https://checkout.stripe.com/c/pay/{started.session_id}"
    sent = fake.calls("/v1/checkout/sessions")[-1]
    assert sent["mode"] == "payment"
    assert sent["line_items[0][price_data][unit_amount]"] == "2590"
    assert sent["line_items[0][price_data][currency]"] == "eur"
    assert sent["client_reference_id"] == "6a8b0c1e-0000-4000-8000-000000000001"
    assert sent["success_url"].endswith("?payment=done")
    assert int(sent["expires_at"]) > time.time() + 29 * 60
    # Asked again with the same key (a retry): the same session, not a second one.
    again = provider.start(request())
    assert again.session_id == started.session_id
    headers = [h for path, _, h in fake.requests if path == "/v1/checkout/sessions"]
    assert headers[-1]["Idempotency-Key"] == "pay-1-0"


def test_a_refund_goes_to_the_payment_intent(fake: FakeStripe,
                                             provider: StripeProvider) -> None:
    refund_id = provider.refund("pi_3PABC", 700, "refund-1-0-700")
    assert refund_id.startswith("re_")
    assert fake.calls("/v1/refunds")[-1] == {"payment_intent": "pi_3PABC", "amount": "700"}
    assert provider.refund("pi_3PABC", 700, "refund-1-0-700") == refund_id  # a retry


def test_a_provider_error_is_a_clean_503(fake: FakeStripe, provider: StripeProvider) -> None:
    fake.fail_next = (402, "card_error")
    with pytest.raises(ServiceError) as refused:
        provider.refund("pi_3PABC", 100, "refund-2-0-100")
    assert (refused.value.status, refused.value.code) == (503, "payment_provider_unavailable")
    wrong_key = StripeProvider("sk_test_wrong", WEBHOOK_SECRET, api_base=fake.url)
    with pytest.raises(ServiceError):
        wrong_key.start(request("pay-2-0"))


def signed(event: dict, secret: str = WEBHOOK_SECRET, at: int | None = None
           ) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    return body, sign_payload(body, secret, at)


def session_object(**fields: object) -> dict:
    return {"id": "cs_test_a1", "object": "checkout.session", "amount_total": 2590,
            "currency": "eur", "payment_intent": "pi_3PABC", "payment_status": "paid",
            "status": "complete", **fields}


def test_signed_webhooks_become_payment_events(provider: StripeProvider) -> None:
    paid = provider.parse_event(*signed(stripe_event("checkout.session.completed",
                                                     session_object())))
    assert (paid.kind, paid.session_id, paid.payment_id, paid.amount, paid.currency) == (
        "paid", "cs_test_a1", "pi_3PABC", 2590, "EUR")
    waiting = provider.parse_event(*signed(stripe_event(
        "checkout.session.completed", session_object(payment_status="unpaid"))))
    assert waiting.kind == "ignored"  # a delayed method: paid later, or failed
    later = provider.parse_event(*signed(stripe_event(
        "checkout.session.async_payment_succeeded", session_object())))
    assert later.kind == "paid"
    failed = provider.parse_event(*signed(stripe_event(
        "checkout.session.async_payment_failed", session_object(payment_status="unpaid"))))
    assert failed.kind == "failed"
    expired = provider.parse_event(*signed(stripe_event(
        "checkout.session.expired", session_object(status="expired", payment_intent=None))))
    assert expired.kind == "expired"
    refunded = provider.parse_event(*signed(stripe_event("charge.refunded", {
        "id": "ch_1", "object": "charge", "amount": 2590, "amount_refunded": 1000,
        "currency": "eur", "payment_intent": "pi_3PABC"})))
    assert (refunded.kind, refunded.payment_id, refunded.refunded_total) == (
        "refunded", "pi_3PABC", 1000)
    other = provider.parse_event(*signed(stripe_event("customer.created", {"id": "cus_1"})))
    assert other.kind == "ignored"


@pytest.mark.parametrize("how", ["missing", "other secret", "stale", "tampered"])
def test_a_webhook_without_a_good_signature_is_refused(provider: StripeProvider,
                                                       how: str) -> None:
    event = stripe_event("checkout.session.completed", session_object())
    body, signature = signed(event)
    if how == "missing":
        signature = ""
    elif how == "other secret":
        body, signature = signed(event, "whsec_someone_else")
    elif how == "stale":
        body, signature = signed(event, at=int(time.time()) - 3600)
    else:
        body = body.replace(b"2590", b"1")
    with pytest.raises(ServiceError) as refused:
        provider.parse_event(body, signature)
    assert (refused.value.status, refused.value.code) == (400, "invalid_signature")
