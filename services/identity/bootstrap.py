"""Staff accounts from the command line: the first owner for `make run`, more when needed."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from messaging.database import create_engine_for, database_url
from services.identity.dependencies import password_hasher
from services.identity.domain import STAFF_ROLES, normalise_email, password_problems
from services.identity.models import StaffUser


@dataclass(frozen=True)
class CreatedStaff:
    email: str
    role: str
    password: str | None  # set only when we generated it, to be shown once


def _engine() -> Engine:
    return create_engine_for(database_url("IDENTITY_DATABASE_URL", "identity.db"), pool_size=1)


def create_staff(email: str, role: str, password: str | None = None) -> CreatedStaff:
    if role not in STAFF_ROLES:
        raise ValueError(f"role must be one of {STAFF_ROLES}")
    email = normalise_email(email)
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    problems = password_problems(password, email, 8)
    if problems:
        raise ValueError(" ".join(problems))
    engine = _engine()
    try:
        with Session(engine) as session, session.begin():
            if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
                raise ValueError(f"a staff user with email {email} already exists")
            session.add(StaffUser(email=email, role=role, status="active",
                                  password_hash=password_hasher().hash(password)))
    finally:
        engine.dispose()
    return CreatedStaff(email, role, password if generated else None)


def ensure_owner(email: str | None, password: str | None) -> CreatedStaff | None:
    """Create the first owner unless one exists: from OWNER_EMAIL/OWNER_PASSWORD when given
    (as container images do for their admin), otherwise with a generated password."""
    engine = _engine()
    try:
        with Session(engine) as session:
            if session.scalar(select(StaffUser.id).where(StaffUser.role == "owner")):
                return None
    finally:
        engine.dispose()
    return create_staff(email or "owner@example.com", "owner", password)
