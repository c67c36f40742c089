"""Orders' nameko dependencies: its own database (with the outbox relay)."""

from nameko.extensions import DependencyProvider

from messaging.database import Database
from services.orders.models import Base
from services.orders.providers import PaymentProvider, provider_from_env


def orders_database() -> Database:
    return Database(Base.metadata, url_env="ORDERS_DATABASE_URL", sqlite_name="orders.db")


class PaymentProviderDependency(DependencyProvider):
    """The provider that takes card payments (PAYMENT_PROVIDER; None: no card payments),
    made once at start: a missing key stops the service there, not at a shopper's first
    payment."""

    def setup(self) -> None:
        self.provider = provider_from_env()

    def get_dependency(self, worker_ctx: object) -> PaymentProvider | None:
        return self.provider
