"""HTTP conventions that hold before any service is called (Flask test client)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.config import GatewayConfig


@pytest.fixture
def client() -> FlaskClient:
    app = create_app(GatewayConfig(amqp_uri="amqp://guest:guest@127.0.0.1:1/",
                                   rpc_timeout=1, max_body_bytes=1024))
    return app.test_client()


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["status"], body["code"]) == (status, code)
    assert {"type", "title", "detail"} <= set(body)
    return body


def test_healthz_and_request_id(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <x>"}).headers
    assert generated["X-Request-ID"] != "bad id <x>" and len(generated["X-Request-ID"]) == 36


def test_body_problems(client: FlaskClient) -> None:
    assert_problem(client.post("/api/v1/checkout", data="x", content_type="text/plain"),
                   415, "unsupported_media_type")
    assert_problem(client.post("/api/v1/checkout", data="{", content_type="application/json"),
                   400, "malformed_json")
    assert_problem(client.post("/api/v1/checkout", data=b'"\xff"',
                               content_type="application/json"), 400, "invalid_encoding")
    assert_problem(client.post("/api/v1/checkout", data="[1]", content_type="application/json"),
                   422, "validation_failed")
    assert_problem(client.post("/api/v1/checkout", data="1" * 2048,
                               content_type="application/json"), 413,
                   "request_entity_too_large")
    nested = "[" * 50 + "]" * 50
    assert_problem(client.post("/api/v1/checkout", data='{"a":' + nested + "}",
                               content_type="application/json"), 422, "too_deeply_nested")
    body = assert_problem(client.post("/api/v1/checkout", json={"email": "a@b.c", "admin": 1}),
                          422, "validation_failed")
    assert body["errors"] == {"admin": ["Unknown field."]}


def test_unknown_route_and_method(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/nope"), 404, "not_found")
    response = client.get("/api/v1/checkout")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unreachable_broker_is_a_503_problem_not_a_500(client: FlaskClient) -> None:
    body = assert_problem(client.get("/api/v1/products"), 503, "service_unavailable")
    assert "Traceback" not in str(body)


def test_service_errors_cannot_overwrite_standard_problem_members(client: FlaskClient) -> None:
    from messaging.errors import ServiceError

    @client.application.get("/boom")
    def boom() -> None:
        raise ServiceError("illegal_transition", "nope", 409,
                           extra={"status": "disabled", "allowed": ["active"]})

    body = assert_problem(client.get("/boom"), 409, "illegal_transition")
    assert body["allowed"] == ["active"]


def test_openapi_documents_every_api_route(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.0.3"
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    app = client.application
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        path = re.sub(r"\{(?:[a-z]+(?:\([^)]*\))?:)?(\w+)\}", r"{\1}", path)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    checkout = spec["paths"]["/api/v1/checkout"]["post"]
    assert checkout["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "StorefrontCheckout")
    assert "default" in checkout["responses"]
    body = spec["components"]["schemas"]["StorefrontCheckout"]
    assert body["additionalProperties"] is False and "unit_price" not in str(body)


def test_every_schema_has_one_name_in_openapi(client: FlaskClient) -> None:
    """No two shapes share a component name (apispec warned "Multiple schemas resolved to the
    name AddressInput" and renamed one at random): a PATCH body is a shape of its own."""
    import warnings

    from gateway.openapi import build_spec

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = build_spec(client.application)
    schemas = spec["components"]["schemas"]
    assert "required" in schemas["AddressInput"]
    assert "required" not in schemas["AddressInputPatch"]


def test_each_route_lists_the_problem_codes_it_can_answer(client: FlaskClient) -> None:
    """From the route's own problems, its policy rules and its RPCs' catalogues."""
    spec = client.get("/openapi.json").get_json()
    checkout = spec["paths"]["/api/v1/checkout"]["post"]["responses"]["default"]
    assert {"login_required", "account_not_approved", "quantity_limit", "out_of_stock",
            "payment_method_unavailable"} <= set(checkout["x-problem-codes"])
    assert "quantity_limit" in checkout["description"]
    status = spec["paths"]["/api/v1/admin/orders/{order_id}/status"]["post"]
    assert "illegal_transition" in status["responses"]["default"]["x-problem-codes"]


def test_docs_page_is_served_without_a_cdn(client: FlaskClient) -> None:
    page = client.get("/docs/")
    assert page.status_code == 200 and b"swagger" in page.data.lower()
    assert b"cdn" not in page.data.lower() and b"unpkg" not in page.data.lower()
    assert client.get("/docs/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize("raw", [b'{"email": "a\\u0000b@example.com"}', b'{"x\\u0000": 1}',
                                 b'{"email": "\\ud800"}', b'{"lines": [{"sku": "\\udfff"}]}'])
def test_nul_and_lone_surrogates_are_refused_up_front(client: FlaskClient, raw: bytes) -> None:
    assert_problem(client.post("/api/v1/checkout", data=raw, content_type="application/json"),
                   400, "invalid_characters")


def test_a_service_that_does_not_answer_in_time_is_a_504_problem(client: FlaskClient) -> None:
    from nameko.exceptions import RpcTimeout

    @client.application.get("/slow")
    def slow() -> None:
        raise RpcTimeout(1)

    response = client.get("/slow")
    assert_problem(response, 504, "upstream_timeout")
    assert response.headers["Retry-After"] == "2"


def test_nul_in_the_url_is_refused(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/orders/x%00y?token=t"), 400, "invalid_characters")
    assert_problem(client.get("/api/v1/admin/customers?q=a%00b"), 400, "invalid_characters")


def test_cors_answers_only_the_configured_storefront_origins() -> None:
    app = create_app(GatewayConfig(amqp_uri="amqp://guest:guest@127.0.0.1:1/", rpc_timeout=1,
                                   cors_origins=("https://shop.example",)))
    client = app.test_client()
    preflight = client.options("/api/v1/checkout", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, Idempotency-Key"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "idempotency-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    other = client.options("/api/v1/checkout", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers
    exposed = client.get("/healthz", headers={"Origin": "https://shop.example"})
    assert "Access-Control-Allow-Origin" not in exposed.headers  # only /api is shared
