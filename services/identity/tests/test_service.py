"""The identity service in-process, on a real migrated PostgreSQL database: its RPCs called
directly, state and outbox checked in its own tables."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from nameko.containers import ServiceContainer

from gateway.auth import TokenVerifier
from harness.containers import call, rows, service_container
from messaging.errors import ServiceError
from messaging.keys import rotate_signing_key, unseal
from services.identity.dependencies import TokenIssuer
from services.identity.service import IdentityService

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
             ) -> Iterator[tuple[ServiceContainer, str]]:
    with service_container(IdentityService, SERVICE_DIR, "IDENTITY_DATABASE_URL", monkeypatch,
                           tmp_path) as running:
        yield running


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


def test_rotating_the_signing_key_logs_nobody_out(
    identity: tuple[ServiceContainer, str]
) -> None:
    """After `clientela keys --rotate-signing-key`: a token signed before still verifies (its
    key stays published), identity publishes both keys at once, and once restarted it signs
    with the new key, which verifies too."""
    container, _ = identity
    call(container, "register", {"email": "rot@example.com", "password": "a long passphrase"})
    before = call(container, "login", {"email": "rot@example.com",
                                       "password": "a long passphrase"})["access_token"]
    old_kid, new_kid = rotate_signing_key()
    jwks = call(container, "get_jwks")
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid}
    verifier = TokenVerifier(lambda: call(container, "get_jwks"))
    assert verifier.verify(before)["sub"]  # signed with the old key: still good

    restarted = TokenIssuer()  # what identity signs with after its restart
    after, _ = restarted.access_token(uuid.uuid4(), "storefront", uuid.uuid4(),
                                      datetime.now(UTC))
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert verifier.verify(after)["aud"] == "storefront"
    old_kid_again, newest = rotate_signing_key()  # a second rotation drops the oldest key
    assert old_kid_again == new_kid
    assert {key["kid"] for key in restarted.jwks()["keys"]} == {new_kid, newest}


def test_the_settings_offer_every_payment_method_with_its_kind(
    identity: tuple[ServiceContainer, str]
) -> None:
    """The admin lists the methods a store may enable from here, not from its own copy."""
    container, _ = identity
    choices = call(container, "get_store_settings")["payment_method_choices"]
    assert choices == [{"method": "bank_transfer", "kind": "manual"},
                       {"method": "cash", "kind": "manual"},
                       {"method": "cheque", "kind": "manual"},
                       {"method": "card", "kind": "provider"}]
