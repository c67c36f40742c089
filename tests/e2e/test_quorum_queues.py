"""QUEUE_TYPE=quorum, as production runs: every queue of ours is a quorum queue (replicated
on a cluster), and an order still reaches the customer's inbox through them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from harness.infra import queue_types
from harness.smtp import SmtpSink
from harness.system import System
from tests.conftest import start_system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink) -> Iterator[System]:
    running = start_system(tmp_path_factory.mktemp("system"), vhost, databases, smtp,
                           QUEUE_TYPE="quorum")
    yield running
    running.stop()


def test_events_flow_through_quorum_queues(system: System, vhost: str, smtp: SmtpSink) -> None:
    types = queue_types(vhost)
    ours = {name: kind for name, kind in types.items()
            if name.startswith("evt-") or ".retry." in name or name.endswith(".dead-letter")}
    assert any(name.endswith("orders.dead-letter") for name in ours)
    assert any(".retry." in name for name in ours)
    assert set(ours.values()) == {"quorum"}, ours
    # The RPC request queues too (they survive a node's loss, issue #24), and no reply queue
    # exists: the gateway takes its replies on direct reply-to.
    rpc_queues = {name: kind for name, kind in types.items() if name.startswith("rpc-")}
    assert set(rpc_queues) >= {"rpc-identity", "rpc-customers", "rpc-orders",
                               "rpc-notifications"}
    assert set(rpc_queues.values()) == {"quorum"}, rpc_queues
    assert not [name for name in types if name.startswith("rpc.reply")]

    email = f"quorum-{uuid.uuid4().hex[:8]}@example.com"
    sku = requests.get(system.api("/products"), timeout=10).json()["items"][0]["sku"]
    placed = requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": sku, "quantity": 1}],
        "shipping_address": {"first_name": "Ana", "last_name": "Gil", "line1": "Calle 1",
                             "city": "Vigo", "country": "ES"}})
    assert placed.status_code == 201, placed.text
    [confirmation] = smtp.wait_for_mail_to(email)
    assert placed.json()["order"]["number"] in confirmation.text()
    assert not [name for name in queue_types(vhost) if name.startswith("rpc.reply")]


def test_readiness_reports_each_consumer_connection(system: System) -> None:
    """RPC requests and events consume on connections of their own, each in /readyz."""
    from gateway.rpc import RpcPool

    pool = RpcPool(system.env["AMQP_URI"], size=1, timeout=10)
    try:
        for service in ("identity", "customers", "orders", "notifications"):
            report = pool.call(service, "ready")
            assert report["status"] == "ok", report
            assert report["broker"] == {"rpc": "consuming", "events": "consuming"}, report
    finally:
        pool.close()
