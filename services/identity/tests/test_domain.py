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
