"""Typed service settings from the environment (messaging.config)."""

from __future__ import annotations

import pytest

from messaging.config import describe, from_environment
from services.identity.config import IdentityConfig
from services.notifications.config import NotificationsConfig
from services.orders.config import OrdersConfig


def test_unset_variables_keep_the_defaults() -> None:
    assert from_environment(OrdersConfig, {}) == OrdersConfig()
    assert from_environment(NotificationsConfig, {"SMTP_URL": "  "}).smtp_url is None


def test_values_are_converted_to_each_fields_type() -> None:
    config = from_environment(NotificationsConfig, {
        "MAIL_RETRY_DELAYS_S": "0.5, 1,2", "SEND_LEASE_SECONDS": "15",
        "SMTP_URL": "smtp://127.0.0.1:2525"})
    assert config.mail_retry_delays_s == (0.5, 1.0, 2.0)
    assert config.send_lease_seconds == 15.0 and config.smtp_url == "smtp://127.0.0.1:2525"
    orders = from_environment(OrdersConfig, {"GATEWAY_PORT": "8100",
                                             "STOREFRONT_URL": "https://shop.test/"})
    assert orders.test_provider_url == "http://127.0.0.1:8100"
    assert orders.links.order("42", "t", pay=True) == "https://shop.test/orders/42?token=t&pay=1"


def test_a_bad_value_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="ARGON2_MAX_CONCURRENT='four'"):
        from_environment(IdentityConfig, {"ARGON2_MAX_CONCURRENT": "four"})


def test_every_setting_is_listed_with_its_default() -> None:
    assert ("ARGON2_MEMORY_KIB", 19456) in describe(IdentityConfig)
    assert ("PAYMENT_PROVIDER", "") in describe(OrdersConfig)
