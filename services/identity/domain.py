"""Pure identity rules."""

from __future__ import annotations

from typing import Any

CUSTOMER_ACCOUNT_MODES = ("disabled", "optional", "required")
DEFAULT_SETTINGS: dict[str, Any] = {
    "customer_accounts": "disabled",
    "require_approval": False,
    "password_min_length": 8,
    "locale": "es",
    "currency": "EUR",
    "store_name": "Clientela Store",
}


def diff_settings(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields that really change."""
    return {
        field: [current[field], value]
        for field, value in changes.items()
        if current.get(field) != value
    }
