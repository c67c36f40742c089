"""Paying orders: starting a payment (storefront), the providers' webhooks, and the test
provider's hosted page (for `make run`, the example store and the tests)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template_string, request

from gateway.auth import STOREFRONT, claims_for
from gateway.blueprints import json_body, reject_unknown, rpc_call, store_settings
from gateway.limits import limit
from gateway.openapi import document
from gateway.problems import Problem
from messaging.contracts.orders import StartPaymentSchema

payments = Blueprint("payments", __name__)
pay_pages = Blueprint("pay_pages", __name__)

# The header each provider signs its webhooks in.
SIGNATURE_HEADERS = {"stripe": "Stripe-Signature", "test": "Test-Signature"}
MAX_WEBHOOK_BYTES = 256 * 1024  # Stripe's events are a few KB


@payments.post("/orders/<order_id>/payment")
@limit("checkout")
@document(
    "Start paying an order: where to send the shopper", tags=["orders"],
    auth="optional-customer", responses={200: StartPaymentSchema},
    description="For the order's customer (bearer token) or a guest with the order's token "
                '({"token": "…"} from the confirmation email). One payment page per order: '
                "asking again answers the same page while it is open. 409 already_paid, "
                "409 order_not_payable (canceled, abandoned), 409 card_payments_disabled.")
def start_payment(order_id: str) -> Any:
    body = json_body() if request.get_data(cache=True) else {}
    reject_unknown(body, {"token"})
    token = body.get("token")
    if token is not None and (not isinstance(token, str) or not 1 <= len(token) <= 200):
        raise Problem(404, "order_not_found", "No such order.")
    claims = claims_for(STOREFRONT, required=False)
    if claims is None and token is None:
        raise Problem(401, "login_required", "Log in, or send the order's token.",
                      headers={"WWW-Authenticate": "Bearer"})
    if "card" not in (store_settings().get("payment_methods") or ["card"]):
        raise Problem(409, "card_payments_disabled", "This store does not take card "
                      "payments: see the order's payment instructions.")
    return jsonify(rpc_call("orders", "start_payment", order_id,
                            claims["sub"] if claims else None, token))


@payments.post("/payments/<provider>/webhook")
@document(
    "A payment provider's event (Stripe: the endpoint's webhook URL)", tags=["payments"],
    responses={200: None},
    description="Signed by the provider (Stripe-Signature): 400 without a valid signature, "
                "nothing changed. Each event is handled once, in any order.")
def webhook(provider: str) -> Any:
    return jsonify(receive_webhook(provider, request.get_data(cache=True),
                                   request.headers))


def receive_webhook(provider: str, body: bytes, headers: Any) -> dict[str, Any]:
    """One path for every event, whether a provider posts it or the test page hands it on."""
    header = SIGNATURE_HEADERS.get(provider)
    if header is None:
        raise Problem(404, "unknown_provider", "No such payment provider.")
    signature = headers.get(header)
    if not signature or len(signature) > 2000:
        raise Problem(400, "invalid_signature", f"The {header} header is missing.")
    if len(body) > MAX_WEBHOOK_BYTES:
        raise Problem(413, "payload_too_large", "The event is too large.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "invalid_signature", "The event is not UTF-8.") from None
    return rpc_call("orders", "receive_payment_event", provider, text, signature)


# The test provider's page: no money, two buttons. Its Pay sends the webhook a signed
# payment.succeeded, as a real provider would after taking the money.
TEST_PAGE = """<!doctype html>
<html lang="{{ locale }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }} {{ page.number }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
.amount{font-size:2rem;margin:1rem 0}button{font-size:1rem;padding:.6rem 1.2rem;margin-right:1rem}
.note{color:#666;font-size:.9rem}</style></head>
<body><h1>{{ t.title }} {{ page.number }}</h1>
<p class="note">{{ t.note }}</p>
<p class="amount">{{ amount }} {{ page.currency }}</p>
{% if open %}
<form method="post"><button name="outcome" value="pay">{{ t.pay }}</button>
<button name="outcome" value="decline">{{ t.decline }}</button></form>
{% else %}<p role="status">{{ t.closed }}</p>{% endif %}
</body></html>"""
TEST_PAGE_TEXT = {
    "en": {"title": "Pay order", "note": "Test payments: no card, no money.", "pay": "Pay",
           "decline": "Decline", "closed": "This payment page is closed."},
    "es": {"title": "Pagar el pedido", "note": "Pagos de prueba: sin tarjeta ni dinero.",
           "pay": "Pagar", "decline": "Rechazar", "closed": "Esta página de pago está cerrada."},
}
TEST_PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                    "base-uri 'none'; frame-ancestors 'none'")


@pay_pages.get("/pay/test/<session_id>")
def test_payment_page(session_id: str) -> Response:
    page = rpc_call("orders", "test_payment_page", _session_id(session_id))
    locale = page["locale"] if page["locale"] in TEST_PAGE_TEXT else "en"
    html = render_template_string(
        TEST_PAGE, page=page, t=TEST_PAGE_TEXT[locale], locale=locale,
        amount=f"{page['amount'] / 100:.2f}",
        open=page["status"] == "open" and not page["expired"])
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = TEST_PAGE_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@pay_pages.post("/pay/test/<session_id>")
def test_payment_outcome(session_id: str) -> Response:
    outcome = request.form.get("outcome", "")
    if outcome not in ("pay", "decline"):
        raise Problem(422, "validation_failed", "Pay or decline.",
                      errors={"outcome": ["pay or decline"]})
    signed = rpc_call("orders", "test_payment_outcome", _session_id(session_id), outcome)
    receive_webhook("test", signed["body"].encode(), {signed["header"]: signed["signature"]})
    return redirect(signed["return_url"], code=303)


def _session_id(session_id: str) -> str:
    if len(session_id) > 100:
        raise Problem(404, "payment_session_not_found", "No such payment page.")
    return session_id
