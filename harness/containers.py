"""A service running in this process (nameko container) on its own migrated PostgreSQL
database and RabbitMQ vhost: for service-level tests that call entrypoints directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from sqlalchemy import create_engine, text

from harness.infra import amqp_uri_for, postgres_databases, rabbit_vhost
from messaging.keys import ensure_local_keys
from messaging.migrations import upgrade
from messaging.topology import declare


@contextmanager
def service_container(service_cls: type, service_dir: Path, url_env: str,
                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite: bool = False
                      ) -> Iterator[tuple[ServiceContainer, str]]:
    """(started container, its database URL). ``sqlite``: on a SQLite file, as `make run`
    keeps it, instead of PostgreSQL."""
    monkeypatch.setenv("CLIENTELA_VAR_DIR", str(tmp_path))
    ensure_local_keys()
    with rabbit_vhost() as vhost, _database(service_cls.name, tmp_path, sqlite) as url:
        monkeypatch.setenv(url_env, url)
        upgrade(service_dir, url)
        amqp_uri = amqp_uri_for(vhost)
        declare(amqp_uri, [service_cls])
        container = ServiceContainer(service_cls, {"AMQP_URI": amqp_uri, "serializer": "json"})
        container.start()
        try:
            yield container, url
        finally:
            container.stop()


def call(container: ServiceContainer, method: str, *args: Any) -> Any:
    """An entrypoint of the running container, called directly (no broker in between)."""
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def rows(url: str, query: str, **params: Any) -> list[Any]:
    """A query on the service's own database, as the test reads its state."""
    engine = create_engine(url)
    with engine.connect() as connection:
        result = list(connection.execute(text(query), params))
    engine.dispose()
    return result


@contextmanager
def _database(name: str, tmp_path: Path, sqlite: bool) -> Iterator[str]:
    if sqlite:
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    with postgres_databases(name) as urls:
        yield urls[name]
