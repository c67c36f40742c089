"""The storefront's pages that emails and answers link to: built here only, so orders (payment,
recovery and buy links) and notifications (every email's links) cannot drift apart. A
storefront implements these paths (the example store does; DESIGN.md lists them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class StorefrontLinks:
    base: str

    @classmethod
    def from_environment(cls) -> StorefrontLinks:
        return cls(os.environ.get("STOREFRONT_URL", "http://127.0.0.1:8000"))

    def _url(self, path: str, **query: str | None) -> str:
        params = {key: value for key, value in query.items() if value is not None}
        url = f"{self.base.rstrip('/')}{path}"
        return f"{url}?{urlencode(params)}" if params else url

    def order(self, order_id: str, token: str | None = None, *, pay: bool = False,
              payment: str | None = None) -> str:
        """The order's page: a guest's opens with its access token; ``pay`` asks the page to
        start the payment; ``payment`` is the provider's return (done, canceled, declined)."""
        return self._url(f"/orders/{order_id}", token=token, pay="1" if pay else None,
                         payment=payment)

    def create_account(self, order_id: str, token: str) -> str:
        return self._url("/create-account", order=str(order_id), token=token)

    def recover(self, token: str) -> str:
        return self._url(f"/recover/{token}")

    def buy(self, code: str) -> str:
        return self._url(f"/b/{code}")

    def login(self) -> str:
        return self._url("/login")

    def forgot_password(self) -> str:
        return self._url("/forgot-password")

    def reset_password(self, token: str) -> str:
        return self._url("/reset-password", token=token)

    def activate(self, token: str) -> str:
        return self._url("/activate", token=token)

    def verify_email(self, token: str) -> str:
        return self._url("/verify-email", token=token)

    def confirm_email(self, token: str) -> str:
        return self._url("/confirm-email", token=token)

    def revert_email(self, token: str) -> str:
        return self._url("/revert-email", token=token)
