"""Identity's nameko dependencies: its own database (with the outbox relay)."""

from messaging.database import Database
from services.identity.models import Base


def identity_database() -> Database:
    return Database(Base.metadata, url_env="IDENTITY_DATABASE_URL", sqlite_name="identity.db")
