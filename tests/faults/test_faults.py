"""Faults during a checkout burst, and the books afterwards: orders accepted (answered 201 or
200 to the shopper) = orders stored = order_placed events published = confirmation emails sent
= orders counted for the customer. Lost 0, duplicated 0. (Emails are counted by Message-ID: a
sender killed between the SMTP server's "250" and its own record of it sends that same message
again, and no protocol can stop that; the recipient's mailbox shows it once.)

The shoppers behave as a storefront should: one Idempotency-Key per order, retried on a 5xx,
a 409 "still in progress", a 429 or a dropped connection, until a definite answer. Every process
reaches RabbitMQ and SMTP through proxies the test cuts; PostgreSQL connections are killed with
pg_terminate_backend; a service is killed with SIGKILL while events are being handled.

`make test` runs the quick faults; `make test-faults` adds the SMTP server down for a minute."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from harness.infra import amqp_uri_for, free_port, wait_for
from harness.smtp import SmtpSink
from harness.system import BIN, REPO, System
from harness.tcp_proxy import TcpProxy
from messaging import deadletters
from services.orders.providers import sign_payload
from tests.conftest import start_system
from tests.e2e.test_payments import webhook_secret

ADDRESS = {"first_name": "Eva", "last_name": "Ruiz", "line1": "Calle Sol 7", "city": "Cádiz",
           "country": "ES"}
SMTP_OUTAGE_S = float(os.environ.get("FAULT_SMTP_OUTAGE_S", "60"))


@pytest.fixture(scope="module")
def smtp_proxy(smtp: SmtpSink) -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", smtp.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink, broker_proxy: TcpProxy, smtp_proxy: TcpProxy) -> Iterator[System]:
    running = start_system(
        tmp_path_factory.mktemp("system"), vhost, databases, smtp,
        AMQP_URI=amqp_uri_for(vhost, host="127.0.0.1", port=broker_proxy.port),
        SMTP_URL=f"smtp://127.0.0.1:{smtp_proxy.port}",
        # mail retries that outlast a minute's outage: 1+2+4+8+15+30+30 s
        MAIL_RETRY_DELAYS_S="1,2,4,8,15,30,30",
        # Handler retries as production spaces them (1 s, 5 s, 30 s...), shortened but still
        # outlasting the faults staged here; the suite's usual 0.2-1 s would dead-letter an
        # event whose every attempt met a killed connection.
        RETRY_DELAYS_MS="1000,2000,4000,8000,15000",
        SEND_LEASE_SECONDS="15",  # a killed sender's email goes out 15 s later, not 2 min
        RATE_LIMIT_CHECKOUT="100000/minute")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sku(system: System, owner: dict[str, str]) -> str:
    """A product with no stock limit: the burst measures faults, not selling out."""
    response = requests.post(system.api("/admin/products"), headers=owner, timeout=10, json={
        "sku": "FAULT-MUG", "title": "Taza", "price": 900, "stock": None})
    assert response.status_code == 201, response.text
    return "FAULT-MUG"


@dataclass
class Burst:
    tag: str
    sku: str
    accepted: set[str] = field(default_factory=set)
    answers: dict[int, int] = field(default_factory=dict)  # status → how many (retries too)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def email(self, n: int) -> str:
        return f"{self.tag}-{n}@faults.test"


def shop(system: System, burst: Burst, n: int, deadline: float) -> None:
    """One shopper's order: retried with the same key until it is answered for good."""
    key = f"{burst.tag}-{n}"
    body = {"email": burst.email(n), "lines": [{"sku": burst.sku, "quantity": 1}],
            "shipping_address": ADDRESS, "payment_method": "bank_transfer"}
    while time.monotonic() < deadline:
        try:
            response = requests.post(system.api("/checkout"), json=body, timeout=20,
                                     headers={"Idempotency-Key": key})
        except requests.RequestException:
            time.sleep(0.5)
            continue
        with burst.lock:
            burst.answers[response.status_code] = burst.answers.get(response.status_code, 0) + 1
        if response.status_code in (200, 201):
            with burst.lock:
                burst.accepted.add(response.json()["order"]["id"])
            return
        if response.status_code >= 500 or response.status_code == 429 or (
                response.status_code == 409
                and response.json().get("code") == "idempotency_in_progress"):
            time.sleep(float(response.headers.get("Retry-After", "0.5")))
            continue
        raise AssertionError(f"checkout refused for good: {response.status_code} "
                             f"{response.text}")
    raise AssertionError(f"no definite answer for {key}")


def run_burst(system: System, sku: str, orders: int, fault: Callable[[], None],
              patience: float = 240.0) -> Burst:
    """``orders`` checkouts from 6 shoppers at once, with ``fault`` staged meanwhile."""
    burst = Burst(tag=f"f{uuid.uuid4().hex[:8]}", sku=sku)
    deadline = time.monotonic() + patience
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(shop, system, burst, n, deadline) for n in range(orders)]
        fault()
        for future in futures:
            future.result()
    return burst


def audit(system: System, smtp: SmtpSink, burst: Burst, orders: int,
          mail_patience: float = 60.0) -> dict[str, int]:
    """The books after a fault: every count equal to the orders accepted, nothing twice."""
    assert len(burst.accepted) == orders  # every shopper got an order, one each
    stored = {str(row.id) for row in system.sql(
        "orders", "SELECT id FROM orders WHERE email LIKE :p", p=f"{burst.tag}-%")}
    assert stored == burst.accepted  # lost 0, and no order nobody was told about
    wait_for(lambda: not system.sql(
        "orders", "SELECT id FROM outbox WHERE published_at IS NULL AND body LIKE :p",
        p=f"%{burst.tag}-%"), timeout=60, message="every event published")
    [(events,)] = system.sql("orders", "SELECT count(*) FROM outbox WHERE event_type = "
                             "'order_placed' AND body LIKE :p", p=f"%{burst.tag}-%")
    for n in range(orders):
        smtp.wait_for_mail_to(burst.email(n), timeout=mail_patience)
    ledger = wait_for(lambda: (rows := system.sql(
        "customers", "SELECT orders_count FROM customers WHERE email LIKE :p",
        p=f"{burst.tag}-%")) and len(rows) == orders and rows, timeout=60,
        message="every customer counted")
    time.sleep(2.5)  # would a duplicate email or count still turn up?
    parked = {service: deadletters.depth(system.env["AMQP_URI"], service)
              for service in ("customers", "notifications", "orders", "identity")}
    assert not any(parked.values()), f"dead-lettered: {parked}"
    # SMTP has no transactions: a sender killed after the server took a message and before
    # it recorded that, sends it again when its claim expires. It is the same email, with
    # the same Message-ID (the delivery's id), which mailboxes show once: count those.
    received = [smtp.to(burst.email(n)) for n in range(orders)]
    emails = [len({mail.message["Message-ID"] for mail in mails}) for mails in received]
    counted = sum(row.orders_count for row in system.sql(
        "customers", "SELECT orders_count FROM customers WHERE email LIKE :p",
        p=f"{burst.tag}-%"))
    books = {"accepted": len(burst.accepted), "stored": len(stored), "events": events,
             "emails": sum(emails), "smtp_transfers": sum(len(m) for m in received),
             "counted": counted}
    print(f"\n{burst.tag}: {books}; answers seen {dict(sorted(burst.answers.items()))}")
    assert events == orders
    assert emails == [1] * orders, emails
    assert len(ledger) == orders and counted == orders
    return books


def test_rabbitmq_cut_during_a_checkout_burst(system: System, sku: str, smtp: SmtpSink,
                                              broker_proxy: TcpProxy) -> None:
    def cut_the_broker() -> None:
        time.sleep(0.5)
        broker_proxy.cut()  # every process loses its connection at once
        time.sleep(4)
        broker_proxy.restore()

    burst = run_burst(system, sku, 30, cut_the_broker)
    audit(system, smtp, burst, 30)


def test_postgresql_connections_dropped_mid_transaction(system: System, sku: str,
                                                        smtp: SmtpSink) -> None:
    databases = [urlparse(system.database_urls[name]).path.lstrip("/")
                 for name in ("orders", "customers", "notifications")]

    def drop_connections() -> None:
        for _ in range(6):
            time.sleep(0.4)
            for database in databases:  # whatever each was doing, in or out of a transaction
                system.sql("orders", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :d AND pid <> pg_backend_pid()", d=database)

    burst = run_burst(system, sku, 30, drop_connections)
    audit(system, smtp, burst, 30)


def test_a_service_killed_mid_handler(system: System, sku: str, smtp: SmtpSink) -> None:
    """Second processes of customers and notifications share the event queues; each is killed
    with SIGKILL while it holds messages. What it held goes back to the queue, the other
    process handles it, and nothing is done twice."""
    extra = [_nameko(system, "services.customers.service:CustomersService"),
             _nameko(system, "services.notifications.service:NotificationsService")]
    time.sleep(5)  # connected and consuming

    def kill_them() -> None:
        time.sleep(1.5)
        for process in extra:
            process.send_signal(signal.SIGKILL)

    try:
        burst = run_burst(system, sku, 40, kill_them)
    finally:
        for process in extra:
            process.kill()
            process.wait()
    assert all(process.returncode == -signal.SIGKILL for process in extra)
    audit(system, smtp, burst, 40)


def test_rabbitmq_cut_while_payment_webhooks_arrive(system: System, sku: str, smtp: SmtpSink,
                                                    broker_proxy: TcpProxy) -> None:
    """Card orders paid while the broker is cut: the provider delivers each event (twice, as
    providers may) and retries until it gets a 2xx, as Stripe does. Every payment is recorded
    once: one history row, one event, one email each."""
    tag = f"w{uuid.uuid4().hex[:8]}"
    orders = []
    for n in range(12):
        response = requests.post(system.api("/checkout"), timeout=20, json={
            "email": f"{tag}-{n}@faults.test", "lines": [{"sku": sku, "quantity": 1}],
            "shipping_address": ADDRESS, "payment_method": "card"})
        assert response.status_code == 201, response.text
        order = response.json()
        orders.append((order["order"]["id"],
                       order["payment"]["redirect_url"].rsplit("/", 1)[1]))
    secret = webhook_secret(system)
    events = [json.dumps({"id": f"evt_{tag}_{n}", "type": "payment.succeeded", "data": {
        "session": session_id, "payment": f"pay_{tag}_{n}", "amount": 900,
        "currency": "EUR"}}) for n, (_, session_id) in enumerate(orders)]
    answers: dict[int, int] = {}

    def deliver(body: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:  # signed at each attempt, as a provider does
                response = requests.post(
                    system.api("/payments/test/webhook"), data=body.encode(), timeout=20,
                    headers={"Content-Type": "application/json",
                             "Test-Signature": sign_payload(body.encode(), secret)})
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                if response.ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the webhook was never taken: {body}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(deliver, body) for body in events + events]
        time.sleep(0.3)
        broker_proxy.cut()
        time.sleep(4)
        broker_proxy.restore()
        for future in futures:
            future.result()
    print(f"\n{tag}: webhook answers {dict(sorted(answers.items()))}")
    ids = [order_id for order_id, _ in orders]
    paid = system.sql("orders", "SELECT count(*) FROM orders WHERE id IN :ids AND "
                      "payment_status = 'paid'", ids=tuple(ids))[0][0]
    assert paid == len(ids)
    [(rows,)] = system.sql("orders", "SELECT count(*) FROM order_history WHERE order_id IN "
                           ":ids AND field = 'payment_status'", ids=tuple(ids))
    assert rows == len(ids)  # one "paid" row each, by provider:test
    [(seen,)] = system.sql("orders", "SELECT count(*) FROM provider_events WHERE event_id "
                           "LIKE :p", p=f"evt_{tag}_%")
    assert seen == len(ids)
    wait_for(lambda: not system.sql(
        "orders", "SELECT id FROM outbox WHERE published_at IS NULL"), timeout=60,
        message="every event published")
    [(published,)] = system.sql("orders", "SELECT count(*) FROM outbox WHERE event_type = "
                                "'payment_status_changed' AND body LIKE :p", p=f"%{tag}-%")
    assert published == len(ids)
    for n in range(len(ids)):  # confirmation + payment received, once each
        smtp.wait_for_mail_to(f"{tag}-{n}@faults.test", count=2, timeout=60)
    time.sleep(2.5)
    received = [{m.message["Message-ID"] for m in smtp.to(f"{tag}-{n}@faults.test")}
                for n in range(len(ids))]
    assert [len(r) for r in received] == [2] * len(ids)
    parked = {service: deadletters.depth(system.env["AMQP_URI"], service)
              for service in ("customers", "notifications", "orders", "identity")}
    assert not any(parked.values()), f"dead-lettered: {parked}"


@pytest.mark.slow
def test_smtp_server_down_for_a_minute(system: System, sku: str, smtp: SmtpSink,
                                       smtp_proxy: TcpProxy) -> None:
    smtp_proxy.cut()
    try:
        burst = run_burst(system, sku, 20, lambda: None)
        time.sleep(5)
        assert not any(smtp.to(burst.email(n)) for n in range(20))  # nothing got through
        time.sleep(max(0.0, SMTP_OUTAGE_S - 5))
    finally:
        smtp_proxy.restore()
    audit(system, smtp, burst, 20, mail_patience=90)
    deferred = system.sql("notifications", "SELECT max(attempts) FROM deliveries WHERE "
                          "recipient LIKE :p", p=f"{burst.tag}-%")
    assert deferred[0][0] >= 2  # they were retried, not sent on the first try


def _nameko(system: System, service: str) -> subprocess.Popen[bytes]:
    env = {**system.env, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
           "SERVICE_NAME": service.split(".")[1]}
    log = (Path(system.workdir) / f"{service.split('.')[1]}-extra.log").open("ab")
    return subprocess.Popen([str(BIN / "nameko"), "run", "--config", "config.yaml", service],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
