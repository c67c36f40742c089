"""Alembic glue shared by every service's ``migrations/env.py``, and ``upgrade``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData

from messaging.database import UtcDateTime, create_engine_for


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations are frozen history: render our UtcDateTime as the plain column type it is
    # in the database, so they never import application code that may change.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_alembic_env(metadata: MetaData) -> None:
    """Body of a service's env.py: online migrations against ``sqlalchemy.url``."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine_for(url, pool_size=1)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def alembic_config(service_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(service_dir: Path, url: str) -> None:
    command.upgrade(alembic_config(service_dir, url), "head")
