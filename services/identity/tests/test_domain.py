from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.identity import domain


def test_diff_settings_lists_only_real_changes() -> None:
    current = dict(domain.DEFAULT_SETTINGS)
    assert domain.diff_settings(current, {"locale": "es", "customer_accounts": "optional"}) == {
        "customer_accounts": ["disabled", "optional"]}
    assert domain.diff_settings(current, {}) == {}


def test_throttle_delays_start_after_the_free_tries_and_double_up_to_a_cap() -> None:
    policy = domain.ACCOUNT_THROTTLE
    assert [policy.delay_after(n) for n in range(1, 5)] == [None] * 4
    assert policy.delay_after(5) == timedelta(seconds=1)
    assert policy.delay_after(6) == timedelta(seconds=2)
    assert policy.delay_after(8) == timedelta(seconds=8)
    assert policy.delay_after(500) == timedelta(minutes=15)
    assert domain.ADDRESS_THROTTLE.delay_after(19) is None


def test_account_status_actions() -> None:
    assert domain.status_after("approve", "pending_approval") == "active"
    assert domain.status_after("approve", "active") is None  # already there: no-op
    assert domain.status_after("disable", "invited") == "disabled"
    assert domain.status_after("enable", "disabled") == "active"
    with pytest.raises(ValueError, match="only pending_approval"):
        domain.status_after("approve", "disabled")


def test_password_policy() -> None:
    assert domain.password_problems("a fine long passphrase", "ana@example.com", 8) == []
    assert domain.password_problems("ü" * 64, "ana@example.com", 8) == []
    assert any("common" in p for p in domain.password_problems("iloveyou", "x@y.z", 8))
    assert any("email" in p for p in domain.password_problems("anagarcia-2026",
                                                              "anagarcia@example.com", 8))
    assert domain.password_problems("x" * 257, "a@b.c", 8)


def test_refresh_verdicts() -> None:
    now = datetime.now(UTC)
    fresh = SimpleNamespace(revoked_at=None, used_at=None, expires_at=now + timedelta(days=1))
    assert domain.judge_refresh(fresh, now).ok
    used = SimpleNamespace(revoked_at=None, used_at=now, expires_at=now + timedelta(days=1))
    assert domain.judge_refresh(used, now).revoke_family
    assert not domain.judge_refresh(None, now).ok
    expired = SimpleNamespace(revoked_at=None, used_at=None, expires_at=now)
    assert domain.judge_refresh(expired, now).reason == "expired"


def test_character_classes_rule() -> None:
    assert domain.character_classes("abc") == 1
    assert domain.character_classes("aB3 ") == 4
    assert domain.password_problems("lowercase only words", "x@y.z", 8, min_classes=3)
    assert not domain.password_problems("Lowercase and Upper", "x@y.z", 8, min_classes=3)


def test_hashes_are_upgraded_when_the_cost_is_raised() -> None:
    from argon2 import PasswordHasher

    from services.identity.dependencies import Passwords

    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1))
    old_hash = cheap.hash("a fine long passphrase")
    assert stronger.verify(old_hash, "a fine long passphrase")  # still logs in
    assert stronger.needs_rehash(old_hash)  # and is rehashed at that login
    assert not stronger.needs_rehash(stronger.hash("a fine long passphrase"))
    assert not stronger.verify(old_hash, "wrong") and not stronger.verify(None, "x")


def test_hashes_in_flight_are_capped_and_the_excess_is_told_to_retry() -> None:
    import time

    import eventlet
    import pytest
    from argon2 import PasswordHasher

    from messaging.errors import ServiceError
    from services.identity.dependencies import Passwords

    in_flight, most = 0, 0

    class CountingHasher(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                time.sleep(0.05)  # a real thread (tpool): the others queue meanwhile
                return super().hash(password)
            finally:
                in_flight -= 1

    passwords = Passwords(CountingHasher(time_cost=1, memory_cost=8192, parallelism=1),
                          max_concurrent=2, wait_seconds=30)  # a busy machine: no 503 here
    pool = eventlet.GreenPool()
    hashes = list(pool.imap(passwords.hash, [f"passphrase {n}" for n in range(6)]))
    assert len(hashes) == 6 and most == 2  # six hashed, never more than two at once
    passwords.wait_seconds = 0.2
    passwords.slots.acquire()
    passwords.slots.acquire()  # both slots taken, for longer than the wait
    with pytest.raises(ServiceError) as busy:
        passwords.hash("one more passphrase")
    assert (busy.value.status, busy.value.extra["retry_after"]) == (503, 2)
