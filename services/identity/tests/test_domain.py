from services.identity import domain


def test_diff_settings_lists_only_real_changes() -> None:
    current = dict(domain.DEFAULT_SETTINGS)
    assert domain.diff_settings(current, {"locale": "es", "customer_accounts": "optional"}) == {
        "customer_accounts": ["disabled", "optional"]}
    assert domain.diff_settings(current, {}) == {}
