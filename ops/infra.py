"""Checks that the broker and databases are reachable, with a clear way out when not."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from sqlalchemy import create_engine, text

RABBITMQ_HELP = """RabbitMQ is not reachable at {where}.
Start it, then try again:
  - installed locally (Debian/Ubuntu):   sudo rabbitmq-server -detached
    (or: sudo systemctl start rabbitmq-server)
  - with Docker:   docker run -d --name rabbitmq -p 5672:5672 -p 15672:15672 rabbitmq:3-management
Or point AMQP_URI at a running broker (now: {uri})."""

POSTGRES_HELP = """PostgreSQL is not reachable at {where}.
Start it, then try again:
  - installed locally (Debian/Ubuntu):   sudo pg_ctlcluster $(ls /etc/postgresql) main start
    (or: sudo systemctl start postgresql)
  - with Docker:   docker run -d --name postgres -p 5432:5432 \\
                     -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15
Or point TEST_POSTGRES_URL at a running server (now: {url})."""


def _redact(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


def check_rabbitmq(uri: str, timeout: float = 3.0) -> str | None:
    """None if a broker accepts a TCP connection, else a message saying how to start one.
    ``uri`` may list several brokers separated by ``;`` (a cluster): any one answering will
    do, as the services connect to the first that answers."""
    places = []
    for one in (part.strip() for part in uri.split(";") if part.strip()):
        parsed = urlparse(one)
        host, port = parsed.hostname or "localhost", parsed.port or 5672
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except OSError:
            places.append(f"{host}:{port}")
    return RABBITMQ_HELP.format(where=" or ".join(places),
                                uri=";".join(_redact(part) for part in uri.split(";")))


def check_postgres(url: str) -> str | None:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception:
        parsed = urlparse(url.replace("postgresql+psycopg2", "postgresql"))
        where = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}"
        return POSTGRES_HELP.format(where=where, url=_redact(url))


REDIS_HELP = """Redis is not reachable at {where} (rate limits shared by gateways; tests).
Start it, then try again:
  - installed locally (Debian/Ubuntu):   sudo redis-server --daemonize yes
    (or: sudo systemctl start redis-server)
  - with Docker:   docker run -d --name redis -p 6379:6379 redis:7
Or point REDIS_URL / TEST_REDIS_URL at a running server (now: {url})."""


def check_redis(url: str, timeout: float = 3.0) -> str | None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "localhost", parsed.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                return None
    except OSError:
        pass
    return REDIS_HELP.format(where=f"{host}:{port}", url=_redact(url))
