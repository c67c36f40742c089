"""A service running in this process (nameko container) on its own migrated PostgreSQL
database and RabbitMQ vhost: for service-level tests that call entrypoints directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from nameko.containers import ServiceContainer

from harness.infra import amqp_uri_for, postgres_databases, rabbit_vhost
from messaging.keys import ensure_local_keys
from messaging.migrations import upgrade
from messaging.topology import declare


@contextmanager
def service_container(service_cls: type, service_dir: Path, url_env: str,
                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                      ) -> Iterator[tuple[ServiceContainer, str]]:
    """(started container, its database URL)."""
    monkeypatch.setenv("CLIENTELA_VAR_DIR", str(tmp_path))
    ensure_local_keys()
    with rabbit_vhost() as vhost, postgres_databases(service_cls.name) as urls:
        url = urls[service_cls.name]
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
