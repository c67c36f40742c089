"""Cross-service suites: the whole system on real PostgreSQL, RabbitMQ and SMTP (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from harness.infra import amqp_uri_for, postgres_databases, rabbit_vhost
from harness.smtp import SmtpSink
from harness.system import OWNER_EMAIL, OWNER_PASSWORD, System
from harness.tcp_proxy import TcpProxy

SERVICES = ("identity", "customers", "orders", "notifications")


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    with rabbit_vhost() as name:
        yield name


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    with postgres_databases(*SERVICES) as urls:
        yield urls


def start_system(tmp_path: Path, vhost: str, databases: dict[str, str], smtp: SmtpSink,
                 **extra_env: str) -> System:
    return System(tmp_path, amqp_uri_for(vhost), databases, smtp.url, extra_env).start()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink) -> Iterator[System]:
    """A fresh system per test module: its own databases, vhost and mailbox."""
    running = start_system(tmp_path_factory.mktemp("system"), vhost, databases, smtp)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def broker_proxy() -> Iterator[TcpProxy]:
    """A TCP proxy to RabbitMQ that a test can cut, for processes told to use it."""
    target = urlparse(amqp_uri_for("x"))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def owner(system: System) -> dict[str, str]:
    """The store owner's Authorization header (the owner `make run` creates)."""
    response = requests.post(system.api("/admin/auth/login"), timeout=10,
                             json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
