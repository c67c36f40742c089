"""Customers' nameko dependencies: its own database (with the outbox relay)."""

from messaging.database import Database
from services.customers.models import Base


def customers_database() -> Database:
    return Database(Base.metadata, url_env="CUSTOMERS_DATABASE_URL", sqlite_name="customers.db")
