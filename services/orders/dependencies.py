"""Orders' nameko dependencies: its own database (with the outbox relay)."""

from messaging.database import Database
from services.orders.models import Base


def orders_database() -> Database:
    return Database(Base.metadata, url_env="ORDERS_DATABASE_URL", sqlite_name="orders.db")
