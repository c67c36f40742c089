"""A local fake of the few Stripe API endpoints orders calls, for tests without a network.

Shapes are taken from Stripe's API reference (https://docs.stripe.com/api): the Checkout
Session object (POST /v1/checkout/sessions) and the Refund object (POST /v1/refunds), with
the fields orders reads and the usual others. Like Stripe, it wants a Bearer secret key,
reads form-encoded bodies, and answers a repeated Idempotency-Key with the first answer.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from harness.infra import free_port


def _session(params: dict[str, str], now: int) -> dict[str, Any]:
    session_id = "cs_test_" + secrets.token_urlsafe(40).replace("-", "a").replace("_", "b")
    amount = int(params["line_items[0][price_data][unit_amount]"]) * int(
        params["line_items[0][quantity]"])
    return {
        "id": session_id, "object": "checkout.session", "after_expiration": None,
        "allow_promotion_codes": None, "amount_subtotal": amount, "amount_total": amount,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None, "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"), "consent": None,
        "created": now, "currency": params["line_items[0][price_data][currency]"],
        "customer": None, "customer_creation": "if_required", "customer_details": None,
        "customer_email": params.get("customer_email"),
        "expires_at": int(params.get("expires_at") or now + 86400), "invoice": None,
        "livemode": False, "locale": params.get("locale"),
        "metadata": {"order_id": params.get("metadata[order_id]")}, "mode": "payment",
        "payment_intent": None, "payment_link": None, "payment_method_collection": "always",
        "payment_method_types": ["card"], "payment_status": "unpaid",
        "shipping_address_collection": None, "status": "open", "submit_type": None,
        "success_url": params.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": f"https://checkout.stripe.com/c/pay/{session_id}",
    }


def _refund(params: dict[str, str], now: int) -> dict[str, Any]:
    return {
        "id": "re_" + secrets.token_hex(12), "object": "refund",
        "amount": int(params["amount"]), "balance_transaction": "txn_" + secrets.token_hex(12),
        "charge": "ch_" + secrets.token_hex(12), "created": now, "currency": "eur",
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": {}, "payment_intent": params["payment_intent"], "reason": None,
        "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
        "transfer_reversal": None,
    }


def _error(status: int, kind: str, message: str, code: str | None = None) -> Response:
    return Response(json.dumps({"error": {"type": kind, "message": message, "code": code}}),
                    status=status, mimetype="application/json")


class FakeStripe:
    def __init__(self, secret_key: str = "sk_test_fake") -> None:  # noqa: S107 (a fake's key)
        self.secret_key = secret_key
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.fail_next: tuple[int, str] | None = None  # (status, error type)
        self._answers: dict[str, Response] = {}
        self._server = make_server("127.0.0.1", self.port, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeStripe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def calls(self, path: str) -> list[dict[str, str]]:
        return [params for seen, params, _ in self.requests if seen == path]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided.")
        params = dict(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
        self.requests.append((request.path, params, dict(request.headers)))
        key = request.headers.get("Idempotency-Key")
        if key and key in self._answers:
            return self._answers[key]
        if self.fail_next:
            status, kind = self.fail_next
            self.fail_next = None
            return _error(status, kind, "Your card was declined.", "card_declined")
        now = int(time.time())
        if request.method == "POST" and request.path == "/v1/checkout/sessions":
            body = _session(params, now)
        elif request.method == "POST" and request.path == "/v1/refunds":
            body = _refund(params, now)
        else:
            return _error(404, "invalid_request_error", f"Unrecognized request URL "
                                                        f"({request.method}: {request.path}).")
        response = Response(json.dumps(body), mimetype="application/json",
                            headers={"Request-Id": "req_" + secrets.token_hex(7)})
        if key:
            self._answers[key] = response
        return response


def stripe_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An event as Stripe sends it to a webhook endpoint (API reference: the Event object)."""
    return {"id": "evt_" + secrets.token_hex(12), "object": "event",
            "api_version": "2024-06-20", "created": int(time.time()),
            "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": event_type}
