"""Real infrastructure for tests: a PostgreSQL database and a RabbitMQ vhost of their own.

Own names per run, so a `make run` on the same machine never shares tables or steals messages.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ADMIN_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE_URI = os.environ.get("TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A port to listen on, chosen *outside* the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) comes from the range outgoing connections use
    too: between picking it and the service binding it, a client connection to RabbitMQ or
    PostgreSQL can take it ("address already in use", seen in CI). Ports below the range are
    never given to outgoing connections.
    """
    low, _ = _ephemeral_range()
    candidates = list(range(max(1025, low - 12000), low))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# PostgreSQL ---------------------------------------------------------------------------------
def create_database(name: str) -> str:
    admin = create_engine(ADMIN_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    admin = create_engine(ADMIN_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def postgres_databases(*services: str) -> Iterator[dict[str, str]]:
    """{service: url} of fresh databases, dropped afterwards."""
    names = {service: unique_name(f"clientela_test_{service}") for service in services}
    urls = {}
    try:
        for service, name in names.items():
            urls[service] = create_database(name)
        yield urls
    finally:
        for name in names.values():
            drop_database(name)


# RabbitMQ -----------------------------------------------------------------------------------
def _broker_credentials() -> tuple[str, str]:
    parsed = urlparse(AMQP_BASE_URI)
    return parsed.username or "guest", parsed.password or "guest"


def _management(method: str, path: str) -> bool:
    try:
        response = requests.request(method, f"{MANAGEMENT_URL}/api{path}",
                                    auth=_broker_credentials(), timeout=5,
                                    headers={"content-type": "application/json"},
                                    json={} if method == "PUT" else None)
    except requests.RequestException:
        return False
    return response.status_code < 300


def create_vhost(name: str) -> None:
    user = _broker_credentials()[0]
    if _management("PUT", f"/vhosts/{name}"):
        requests.put(f"{MANAGEMENT_URL}/api/permissions/{name}/{user}", auth=_broker_credentials(),
                     json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=5)
        return
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError(
            "Cannot create a RabbitMQ vhost for the tests: enable the management plugin "
            "(rabbitmq-plugins enable rabbitmq_management) or put rabbitmqctl on the PATH."
        )
    subprocess.run([ctl, "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run([ctl, "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
                   check=True, capture_output=True)


def delete_vhost(name: str) -> None:
    if _management("DELETE", f"/vhosts/{name}"):
        return
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "-q", "delete_vhost", name], check=False, capture_output=True)


def amqp_uri_for(vhost: str, host: str | None = None, port: int | None = None) -> str:
    parsed = urlparse(AMQP_BASE_URI)
    user, password = _broker_credentials()
    netloc = f"{user}:{password}@{host or parsed.hostname}:{port or parsed.port or 5672}"
    return f"amqp://{netloc}/{quote(vhost, safe='')}"


@contextmanager
def rabbit_vhost(prefix: str = "clientela_test") -> Iterator[str]:
    name = unique_name(prefix)
    create_vhost(name)
    try:
        yield name
    finally:
        delete_vhost(name)


def queue_types(vhost: str) -> dict[str, str]:
    """Each queue of a vhost and its type (classic, quorum), from the management API or
    rabbitmqctl."""
    try:
        response = requests.get(f"{MANAGEMENT_URL}/api/queues/{vhost}",
                                auth=_broker_credentials(), timeout=5)
        if response.ok:
            return {queue["name"]: queue["type"] for queue in response.json()}
    except requests.RequestException:
        pass
    listed = subprocess.run([shutil.which("rabbitmqctl") or "rabbitmqctl", "-q",
                             "list_queues", "-p", vhost, "name", "type", "--no-table-headers"],
                            check=True, capture_output=True, text=True)
    return dict(line.split("\t")[:2] for line in listed.stdout.splitlines() if "\t" in line)
