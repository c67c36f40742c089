"""Payment providers behind one interface: ``test`` (built in, for `make run` and the tests)
and ``stripe`` (Checkout Sessions, signed webhooks, refunds through its API).

A provider starts a payment (a page the shopper is sent to), turns its webhook requests into
``PaymentEvent``s once their signature is checked, and refunds. Orders' rules (what an event
does to an order) are not here: see ``payments.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import stripe

from messaging.contracts.orders import OrdersError
from messaging.envelope import utcnow
from messaging.errors import ServiceError
from messaging.keys import derived_secret
from services.orders.config import OrdersConfig

# A payment page stays open this long (Stripe's shortest); the card hold window (60 min by
# default) outlasts it, so an order is not abandoned under a shopper who is paying.
SESSION_MINUTES = 30
WEBHOOK_TOLERANCE_SECONDS = 300  # a signed event older than this is refused (replays)


@dataclass(frozen=True)
class PaymentRequest:
    """What a provider needs to start paying one order."""

    order_id: str
    number: str
    email: str
    amount: int
    currency: str
    locale: str
    success_url: str
    cancel_url: str
    idempotency_key: str


@dataclass(frozen=True)
class StartedPayment:
    session_id: str
    redirect_url: str
    expires_at: datetime


@dataclass(frozen=True)
class PaymentEvent:
    """A webhook event, once its signature is checked. ``kind``: paid, failed, expired,
    refunded (``refunded_total``: all refunded so far) or ignored (a type we do not use)."""

    event_id: str
    kind: str
    session_id: str | None = None
    payment_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    refunded_total: int | None = None
    refund_id: str | None = None


class PaymentProvider(Protocol):
    name: str
    signature_header: str

    def start(self, request: PaymentRequest) -> StartedPayment: ...

    def parse_event(self, body: bytes, signature: str | None) -> PaymentEvent: ...

    def refund(self, payment_id: str, amount: int, idempotency_key: str) -> str: ...


def _invalid_signature() -> ServiceError:
    return ServiceError(OrdersError.INVALID_SIGNATURE,
                        "The webhook signature is missing or wrong.", 400)


def sign_payload(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``t=…,v1=…`` header the way Stripe signs webhooks (HMAC-SHA256 of "t.body")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class TestProvider:
    """A provider with no money: its page (served by the gateway at /pay/test/{session})
    has Pay and Decline, and each sends a signed event to the same webhook route a real
    provider calls. Signed with Stripe's scheme, checked with Stripe's library."""

    name = "test"
    signature_header = "Test-Signature"

    def __init__(self, secret: str, gateway_url: str) -> None:
        self.secret = secret
        self.gateway_url = gateway_url.rstrip("/")

    def start(self, request: PaymentRequest) -> StartedPayment:
        session_id = "tps_" + secrets.token_urlsafe(18)
        return StartedPayment(session_id, f"{self.gateway_url}/pay/test/{session_id}",
                              utcnow() + timedelta(minutes=SESSION_MINUTES))

    def signed_event(self, event_type: str, data: dict[str, Any]) -> tuple[str, str]:
        """An event as the test page sends it: (body, signature header)."""
        body = json.dumps({"id": "evt_test_" + secrets.token_urlsafe(12), "type": event_type,
                           "data": data}, separators=(",", ":"))
        return body, sign_payload(body.encode(), self.secret)

    def parse_event(self, body: bytes, signature: str | None) -> PaymentEvent:
        if not signature:
            raise _invalid_signature()
        try:
            stripe.WebhookSignature.verify_header(body.decode("utf-8"), signature,
                                                  self.secret, WEBHOOK_TOLERANCE_SECONDS)
            event = json.loads(body)
            data, event_id, event_type = event["data"], str(event["id"]), event["type"]
        except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError):
            raise _invalid_signature() from None
        kind = {"payment.succeeded": "paid", "payment.declined": "failed",
                "refund.succeeded": "refunded"}.get(event_type, "ignored")
        return PaymentEvent(event_id, kind, session_id=data.get("session"),
                            payment_id=data.get("payment"), amount=data.get("amount"),
                            currency=data.get("currency"),
                            refunded_total=data.get("refunded_total"),
                            refund_id=data.get("refund"))

    def refund(self, payment_id: str, amount: int, idempotency_key: str) -> str:
        return "re_test_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


class StripeProvider:
    """Stripe Checkout: a hosted page per payment, webhooks signed with the endpoint's
    secret, refunds against the PaymentIntent. Amounts are minor units both sides."""

    name = "stripe"
    signature_header = "Stripe-Signature"

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str | None = None
                 ) -> None:
        self.webhook_secret = webhook_secret
        self.client = stripe.StripeClient(
            secret_key, max_network_retries=2,
            base_addresses={"api": api_base} if api_base else None,
            http_client=stripe.RequestsClient(timeout=15))

    def start(self, request: PaymentRequest) -> StartedPayment:
        expires = utcnow() + timedelta(minutes=SESSION_MINUTES, seconds=30)
        try:
            session = self.client.v1.checkout.sessions.create(params={
                "mode": "payment",
                "client_reference_id": request.order_id,
                "customer_email": request.email,
                "locale": request.locale,
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": request.currency.lower(), "unit_amount": request.amount,
                    "product_data": {"name": f"Order {request.number}"}}}],
                "metadata": {"order_id": request.order_id},
                "payment_intent_data": {"metadata": {"order_id": request.order_id}},
                "success_url": request.success_url,
                "cancel_url": request.cancel_url,
                "expires_at": int(expires.timestamp()),
            }, options={"idempotency_key": request.idempotency_key})
        except stripe.StripeError as exc:
            raise _provider_error(exc) from None
        return StartedPayment(session.id, session.url,
                              datetime.fromtimestamp(session.expires_at, expires.tzinfo))

    def parse_event(self, body: bytes, signature: str | None) -> PaymentEvent:
        if not signature:
            raise _invalid_signature()
        try:
            event = stripe.Webhook.construct_event(body, signature, self.webhook_secret,
                                                   WEBHOOK_TOLERANCE_SECONDS)
        except (stripe.SignatureVerificationError, ValueError):
            raise _invalid_signature() from None
        return stripe_event(event.to_dict())

    def refund(self, payment_id: str, amount: int, idempotency_key: str) -> str:
        try:
            refund = self.client.v1.refunds.create(
                params={"payment_intent": payment_id, "amount": amount},
                options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise _provider_error(exc) from None
        if refund.status == "failed":
            raise ServiceError(OrdersError.REFUND_FAILED, "The provider refused the refund.", 502)
        return refund.id


def stripe_event(event: dict[str, Any]) -> PaymentEvent:
    """The Stripe events orders uses, as PaymentEvents; every other type is ignored."""
    kind = {"checkout.session.completed": "paid",
            "checkout.session.async_payment_succeeded": "paid",
            "checkout.session.async_payment_failed": "failed",
            "checkout.session.expired": "expired",
            "charge.refunded": "refunded"}.get(event["type"], "ignored")
    obj = event["data"]["object"]
    if kind == "paid" and obj.get("payment_status") != "paid":
        kind = "ignored"  # completed, but a delayed method (a transfer) has not paid yet
    if kind == "refunded":
        return PaymentEvent(event["id"], kind, payment_id=obj.get("payment_intent"),
                            amount=obj.get("amount"), currency=(obj.get("currency") or "").upper(),
                            refunded_total=obj.get("amount_refunded"))
    return PaymentEvent(event["id"], kind, session_id=obj.get("id"),
                        payment_id=obj.get("payment_intent"), amount=obj.get("amount_total"),
                        currency=(obj.get("currency") or "").upper() or None)


def _provider_error(exc: stripe.StripeError) -> ServiceError:
    # The provider's message can name the account or the key: logged by the caller's
    # error handler at INFO as a code, never answered to the shopper verbatim.
    return ServiceError(OrdersError.PAYMENT_PROVIDER_UNAVAILABLE,
                        "The payment provider did not answer; try again.", 503,
                        extra={"provider_error": type(exc).__name__})


def payment_provider(config: OrdersConfig) -> PaymentProvider | None:
    """The provider that takes card payments: PAYMENT_PROVIDER=stripe, or test (`make run`,
    the tests: no money). Unset, there is none and card orders are refused: a production
    store that forgot the setting must not take "payments" on the test page."""
    name = config.payment_provider
    if not name:
        return None
    if name == "stripe":
        key, hook = config.stripe_secret_key, config.stripe_webhook_secret
        if not key or not hook:
            raise RuntimeError("PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY and "
                               "STRIPE_WEBHOOK_SECRET")
        return StripeProvider(key, hook, config.stripe_api_base)
    if name != "test":
        raise RuntimeError(f"PAYMENT_PROVIDER must be test or stripe, not {name!r}")
    return TestProvider(derived_secret("test-payment-webhooks"), config.test_provider_url)
