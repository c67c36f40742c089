"""Orders' nameko dependencies: its own database (with the outbox relay)."""

from nameko.extensions import DependencyProvider

from messaging.config import from_environment
from messaging.database import Database
from services.orders.config import OrdersConfig
from services.orders.models import Base
from services.orders.providers import PaymentProvider, payment_provider


def orders_database() -> Database:
    return Database(Base.metadata, url_env="ORDERS_DATABASE_URL", sqlite_name="orders.db")


class PaymentProviderDependency(DependencyProvider):
    """The provider that takes card payments (PAYMENT_PROVIDER; None: no card payments),
    made once at start: a missing key stops the service there, not at a shopper's first
    payment."""

    def setup(self) -> None:
        self.provider = payment_provider(from_environment(OrdersConfig))

    def get_dependency(self, worker_ctx: object) -> PaymentProvider | None:
        return self.provider
