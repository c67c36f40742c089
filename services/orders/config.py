"""Orders' settings (environment variables), read once when the service starts."""

from __future__ import annotations

from dataclasses import dataclass

from messaging.links import StorefrontLinks


@dataclass(frozen=True)
class OrdersConfig:
    # Card payments: stripe (with its keys), test (the built-in page: `make run`, the tests;
    # no money), or unset: none, and card orders are refused.
    payment_provider: str = ""
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None  # a Stripe-compatible server (tests)
    # Where the test provider's page is served (the gateway).
    gateway_url: str | None = None
    gateway_port: int = 8000
    storefront_url: str = "http://127.0.0.1:8000"  # where payment, recovery and buy links lead
    # How often unpaid orders past their hold window are abandoned. nameko takes a timer's
    # interval when the service class is defined, so this one is read at import.
    abandon_sweep_seconds: float = 60.0

    @property
    def links(self) -> StorefrontLinks:
        return StorefrontLinks(self.storefront_url)

    @property
    def test_provider_url(self) -> str:
        return self.gateway_url or f"http://127.0.0.1:{self.gateway_port}"
