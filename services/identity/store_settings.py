"""The store's settings: how customers log in, passwords, language, currency, payment
methods, who sees prices; each change recorded and announced."""

from __future__ import annotations

import logging
from typing import Any

from messaging.contracts import (
    STORE_SETTINGS_CHANGED,
)
from messaging.contracts.identity import (
    IdentityError,
    StoreSettingsSchema,
    StoreSettingsUpdateSchema,
)
from messaging.errors import ServiceError, load_or_raise
from messaging.outbox import emit
from services.identity import (
    domain,
)
from services.identity.accounts import (
    settings_row,
)
from services.identity.dependencies import IdentityParts
from services.identity.models import (
    StoreSettingsChange,
)

log = logging.getLogger(__name__)


def get_store_settings(parts: IdentityParts) -> dict[str, Any]:
    with parts.db.transaction() as session:
        return StoreSettingsSchema().dump(settings_row(session))


def update_store_settings(parts: IdentityParts, changes: dict[str, Any], actor: str
                          ) -> dict[str, Any]:
    data = load_or_raise(StoreSettingsUpdateSchema(), changes)
    with parts.db.transaction() as session:
        row = settings_row(session, lock=True)
        current = StoreSettingsSchema().dump(row)
        problem = domain.settings_problem({**current, **data})
        if problem:
            raise ServiceError(IdentityError.SETTINGS_CONFLICT,
                               "These settings cannot hold together.",
                               422, errors=problem)
        diff = domain.diff_settings(current, data)
        if diff:
            for field, (_, new) in diff.items():
                setattr(row, field, new)
            session.add(StoreSettingsChange(actor=actor, changes=diff))
            emit(session, STORE_SETTINGS_CHANGED, {"changed": diff, "actor": actor})
        return StoreSettingsSchema().dump(row)
