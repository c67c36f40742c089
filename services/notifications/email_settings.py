"""What the merchant decides about the store's emails: which order emails go (the account
and security ones always do), and the Reply-To they carry (from identity's store settings)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from messaging.contracts import load_payload
from messaging.contracts.notifications import NotificationSettingsSchema
from messaging.database import Database
from messaging.envelope import Envelope
from messaging.errors import load_or_raise
from services.notifications.email_kinds import SWITCHABLE
from services.notifications.models import NotificationSetting, SenderProfile


def get_settings(db: Database) -> dict[str, bool]:
    with db.transaction() as session:
        stored = {row.kind: row.enabled for row in session.scalars(
            select(NotificationSetting))}
    return {kind: stored.get(kind, True) for kind in SWITCHABLE}


def update_settings(db: Database, request: dict[str, Any]) -> dict[str, bool]:
    data = load_or_raise(NotificationSettingsSchema(), request)
    with db.transaction() as session:
        for kind, enabled in data.items():
            row = session.get(NotificationSetting, kind, with_for_update=True)
            if row is None:
                session.add(NotificationSetting(kind=kind, enabled=enabled))
            else:
                row.enabled = enabled
    return get_settings(db)


def keep_reply_to(db: Database, envelope: Envelope) -> None:
    """Keep the store's Reply-To: its emails carry it."""
    changed = load_payload(envelope)["changed"]
    if "reply_to" not in changed:
        return
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        profile = session.get(SenderProfile, 1) or SenderProfile(id=1)
        profile.reply_to = changed["reply_to"][1]
        session.add(profile)
