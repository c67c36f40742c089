"""The identity service in-process, on a real migrated PostgreSQL database: its RPCs called
directly, state and outbox checked in its own tables."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from sqlalchemy import create_engine, text

from messaging.errors import ServiceError
from messaging.keys import unseal
from services.identity.service import IdentityService
from tests.support.containers import service_container

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
             ) -> Iterator[tuple[ServiceContainer, str]]:
    with service_container(IdentityService, SERVICE_DIR, "IDENTITY_DATABASE_URL", monkeypatch,
                           tmp_path) as running:
        yield running


def call(container: ServiceContainer, method: str, *args: Any) -> Any:
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def rows(url: str, query: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    with engine.connect() as connection:
        result = list(connection.execute(text(query), params))
    engine.dispose()
    return result


def test_registration_commits_the_account_and_its_event_together(
    identity: tuple[ServiceContainer, str]
) -> None:
    container, url = identity
    call(container, "register", {"email": "Ana@Example.com", "password": "a long passphrase"})
    [account] = rows(url, "SELECT email, status, email_verified, password_hash FROM accounts")
    assert (account.email, account.status, account.email_verified) == (
        "ana@example.com", "active", False)
    assert account.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    [event] = rows(url, "SELECT event_type, body FROM outbox")
    payload = json.loads(event.body)["payload"]
    assert event.event_type == "account_registered"
    token = unseal(payload["verify_token_sealed"])  # sealed in the outbox, not in clear
    assert token not in event.body
    [stored] = rows(url, "SELECT token_hash, purpose FROM one_time_tokens")
    assert stored.purpose == "verify_email" and token not in stored.token_hash


def test_concurrent_registrations_of_one_email_make_one_account(
    identity: tuple[ServiceContainer, str]
) -> None:
    container, url = identity

    def register(_: int) -> Any:
        return call(container, "register", {"email": "race@example.com",
                                            "password": "a long passphrase"})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(register, range(4)))
    assert answers == [{"status": "accepted"}] * 4
    assert rows(url, "SELECT count(*) AS n FROM accounts")[0].n == 1


def test_refresh_reuse_revokes_the_family_and_survives_the_error(
    identity: tuple[ServiceContainer, str]
) -> None:
    container, url = identity
    call(container, "register", {"email": "bo@example.com", "password": "a long passphrase"})
    first = call(container, "login", {"email": "bo@example.com",
                                      "password": "a long passphrase"}, {"ip": "192.0.2.1"})
    second = call(container, "refresh", first["refresh_token"], {})
    with pytest.raises(ServiceError) as error:
        call(container, "refresh", first["refresh_token"], {})
    assert error.value.status == 401
    # the revocation was committed although the call failed
    [family] = rows(url, "SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS live "
                         "FROM refresh_tokens WHERE family_id = :f", f=second["session_id"])
    assert family.live == 0


def test_failed_logins_are_counted_per_account_and_address(
    identity: tuple[ServiceContainer, str]
) -> None:
    container, url = identity
    for _ in range(3):
        with pytest.raises(ServiceError):
            call(container, "login", {"email": "nobody@example.com", "password": "x"},
                 {"ip": "192.0.2.9"})
    counts = {row.key: row.failures for row in rows(url, "SELECT key, failures "
                                                         "FROM login_throttles")}
    nobody = hashlib.sha256(b"nobody@example.com").hexdigest()  # never the address itself
    assert counts == {f"customer:{nobody}": 3, "ip:192.0.2.9": 3}
