"""Prometheus metrics: the gateway's (every worker's samples, for the scraper only) and each
service's (entrypoint timings, outbox backlog, dead-letter depth, emails), after real work."""

from __future__ import annotations

import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} from the Prometheus text format."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset], float], sample: str, **labels: str) -> float:
    """The sum over samples named ``sample`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == sample and wanted <= have)


def service_metrics(system: System, service: str) -> dict[tuple[str, frozenset], float]:
    address = system.env[f"{service.upper()}_WEB_ADDRESS"]
    response = requests.get(f"http://{address}/metrics", timeout=10)
    assert response.status_code == 200, response.text[-3000:]
    return samples(response.text)


def test_metrics_after_a_checkout(system: System, smtp: SmtpSink) -> None:
    email = f"metrics-{uuid.uuid4().hex[:8]}@example.com"
    placed = requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": "EBOOK-RECIPES", "quantity": 1}]})
    assert placed.status_code == 201, placed.text
    smtp.wait_for_mail_to(email)

    # The gateway: whichever worker answers, it reports what every worker counted.
    gateway = samples(requests.get(f"{system.url}/metrics", timeout=10).text)
    assert value(gateway, "clientela_http_requests_total", method="POST",
                 route="/api/v1/checkout", status="201") >= 1
    assert value(gateway, "clientela_rpc_client_seconds_count", service="orders",
                 method="place_order", outcome="ok") >= 1
    assert not any("/orders/" in dict(labels).get("route", "") and "<" not in
                   dict(labels).get("route", "") for _, labels in gateway)  # patterns only
    public = requests.get(f"{system.url}/metrics", timeout=10,
                          headers={"X-Forwarded-For": "8.8.8.8"})  # public
    assert public.status_code == 404  # a shopper through the proxy sees nothing

    orders = service_metrics(system, "orders")
    assert value(orders, "clientela_entrypoint_seconds_count", service="orders", kind="rpc",
                 name="place_order", outcome="ok") >= 1
    assert ("clientela_dead_letters", frozenset({("service", "orders")})) in orders
    wait_for(lambda: value(service_metrics(system, "orders"), "clientela_outbox_backlog",
                           service="orders") == 0, message="the outbox drained")

    def emails_sent() -> float:
        return value(service_metrics(system, "notifications"), "clientela_emails_total",
                     kind="order_confirmation", outcome="sent")

    wait_for(lambda: emails_sent() >= 1, message="the email counted")
    customers = service_metrics(system, "customers")
    assert value(customers, "clientela_entrypoint_seconds_count", kind="event",
                 name="handle_order_placed", outcome="ok") >= 1
    assert value(customers, "clientela_dead_letters", service="customers") == 0
