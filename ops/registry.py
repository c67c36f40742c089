"""The services this repository runs, for operator tools (migrations, topology, seeding).

Operator tools may know every service; services never import each other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from messaging.database import database_url

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    class_path: str  # module:Class, as `nameko run` takes it
    url_env: str

    @property
    def directory(self) -> Path:
        return SERVICES_DIR / self.name

    @property
    def sqlite_name(self) -> str:
        return f"{self.name}.db"

    def database_url(self) -> str:
        return database_url(self.url_env, self.sqlite_name)

    def service_class(self) -> type:
        module, _, cls = self.class_path.partition(":")
        return getattr(importlib.import_module(module), cls)


SERVICES = [
    ServiceInfo("identity", "services.identity.service:IdentityService", "IDENTITY_DATABASE_URL"),
    ServiceInfo("customers", "services.customers.service:CustomersService",
                "CUSTOMERS_DATABASE_URL"),
    ServiceInfo("orders", "services.orders.service:OrdersService", "ORDERS_DATABASE_URL"),
    ServiceInfo("notifications", "services.notifications.service:NotificationsService",
                "NOTIFICATIONS_DATABASE_URL"),
]
