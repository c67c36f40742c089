"""Identity service: thin nameko entrypoints. The backbone serves the store settings."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc
from sqlalchemy.orm import Session

from messaging.contracts import STORE_SETTINGS_CHANGED
from messaging.errors import load_or_raise
from messaging.health import HealthEndpoints
from messaging.logs import LogContext
from messaging.outbox import emit
from services.identity import domain
from services.identity.dependencies import identity_database
from services.identity.models import StoreSettings, StoreSettingsChange
from services.identity.schemas import StoreSettingsSchema, StoreSettingsUpdateSchema


class IdentityService(HealthEndpoints):
    name = "identity"

    db = identity_database()
    log_context = LogContext()

    @rpc
    def get_store_settings(self) -> dict[str, Any]:
        with self.db.transaction() as session:
            return StoreSettingsSchema().dump(_settings_row(session))

    @rpc
    def update_store_settings(self, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        data = load_or_raise(StoreSettingsUpdateSchema(), changes)
        with self.db.transaction() as session:
            row = _settings_row(session, lock=True)
            diff = domain.diff_settings(StoreSettingsSchema().dump(row), data)
            if diff:
                for field, (_, new) in diff.items():
                    setattr(row, field, new)
                session.add(StoreSettingsChange(actor=actor, changes=diff))
                emit(session, STORE_SETTINGS_CHANGED, {"changed": diff, "actor": actor})
            return StoreSettingsSchema().dump(row)


def _settings_row(session: Session, lock: bool = False) -> StoreSettings:
    # The migration inserts row 1; creating it here only covers a hand-emptied table.
    row = session.get(StoreSettings, 1, with_for_update=lock)
    if row is None:
        row = StoreSettings(id=1, **domain.DEFAULT_SETTINGS)
        session.add(row)
        session.flush()
    return row
