"""Every cell of the checkout login policy table (DESIGN.md §6)."""

import pytest

from gateway.policy import (
    checkout_decision,
    ensure_account_offer_open,
    ensure_accounts_offered,
    ensure_address_book_allowed,
    ensure_prices_for_guest,
    ensure_saved_cart_allowed,
    prices_shown,
)
from gateway.problems import Problem


def refused(mode: str, **kwargs: object) -> Problem:
    with pytest.raises(Problem) as error:
        checkout_decision(mode, **kwargs)
    return error.value


def test_disabled_guest_only_no_accounts() -> None:
    with pytest.raises(Problem) as error:
        ensure_accounts_offered("disabled")
    assert (error.value.status, error.value.code) == (403, "accounts_disabled")
    decision = checkout_decision("disabled", logged_in=False)
    assert decision.as_guest and not decision.offer_account
    problem = refused("disabled", logged_in=True, account_status="active")
    assert (problem.status, problem.code) == (403, "accounts_disabled")


def test_optional_guest_with_an_account_offer_or_account() -> None:
    ensure_accounts_offered("optional")
    decision = checkout_decision("optional", logged_in=False)
    assert decision.as_guest and decision.offer_account
    decision = checkout_decision("optional", logged_in=True, account_status="active")
    assert not decision.as_guest


def test_required_refuses_guests_and_unapproved_accounts() -> None:
    ensure_accounts_offered("required")
    problem = refused("required", logged_in=False)
    assert (problem.status, problem.code) == (401, "login_required")
    problem = refused("required", logged_in=True, account_status="pending_approval")
    assert (problem.status, problem.code) == (403, "account_not_approved")
    assert not checkout_decision("required", logged_in=True, account_status="active").as_guest


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_a_disabled_account_is_told_so(mode: str) -> None:
    problem = refused(mode, logged_in=True, account_status="disabled")
    assert (problem.status, problem.code) == (403, "account_disabled")


def test_prices_for_everyone_or_logged_in_customers_only() -> None:
    # The prices rows of the table (DESIGN §9): through HTTP in tests/e2e/test_category_prices.
    everyone, members_only = {"prices_visible": "everyone"}, {"prices_visible": "logged_in"}
    assert prices_shown(everyone, logged_in=False) and prices_shown(everyone, logged_in=True)
    assert prices_shown(members_only, logged_in=True)
    assert not prices_shown(members_only, logged_in=False)
    ensure_prices_for_guest(everyone, logged_in=False)
    with pytest.raises(Problem) as error:
        ensure_prices_for_guest(members_only, logged_in=False)
    assert (error.value.status, error.value.code) == (401, "login_required")


@pytest.mark.parametrize("mode", ["disabled", "optional", "required"])
def test_what_belongs_to_an_account_needs_one_whatever_the_mode(mode: str) -> None:
    """A saved cart and the address book at checkout are an account's in every mode; the
    account offered after a guest checkout only in an optional store."""
    ensure_saved_cart_allowed(logged_in=True)
    with pytest.raises(Problem) as error:
        ensure_saved_cart_allowed(logged_in=False)
    assert (error.value.status, error.value.code) == (401, "login_required")
    for field in ("shipping_address_id", "billing_address_id", "save_address"):
        ensure_address_book_allowed(True, field)
        with pytest.raises(Problem) as error:
            ensure_address_book_allowed(False, field)
        assert (error.value.status, error.value.code) == (422, "validation_failed")
        assert field in error.value.errors
    if mode == "optional":
        ensure_account_offer_open(mode)
    else:
        with pytest.raises(Problem) as error:
            ensure_account_offer_open(mode)
        assert (error.value.status, error.value.code) == (403, "account_offer_unavailable")
