"""Identity's nameko dependencies: its database, password hashing, and the token issuer."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from nameko.extensions import DependencyProvider

from messaging import revocations
from messaging.database import Database
from messaging.keys import TOKEN_ISSUER, public_jwk, published_jwks, signing_key
from services.identity.domain import ACCESS_TOKEN_TTL
from services.identity.models import Base


def identity_database() -> Database:
    return Database(Base.metadata, url_env="IDENTITY_DATABASE_URL", sqlite_name="identity.db")


def password_hasher() -> PasswordHasher:
    """argon2id; defaults at OWASP's minimum (m=19 MiB, t=2, p=1), raised by configuration."""
    return PasswordHasher(
        time_cost=int(os.environ.get("ARGON2_TIME_COST", "2")),
        memory_cost=int(os.environ.get("ARGON2_MEMORY_KIB", "19456")),
        parallelism=int(os.environ.get("ARGON2_PARALLELISM", "1")),
    )


class Passwords:
    """Hashing runs in a real thread (eventlet.tpool): argon2 would otherwise stall every
    green thread of the service for the length of each hash."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        # Verified against when the account does not exist, so "no such email" takes as long
        # as "wrong password".
        self.dummy_hash = hasher.hash(uuid.uuid4().hex)

    def hash(self, password: str) -> str:
        return tpool.execute(self.hasher.hash, password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return tpool.execute(self.hasher.verify, password_hash or self.dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


class PasswordsProvider(DependencyProvider):
    def setup(self) -> None:
        self.passwords = Passwords(password_hasher())

    def get_dependency(self, worker_ctx: Any) -> Passwords:
        return self.passwords


class TokenIssuer:
    """Short-lived access tokens, EdDSA (Ed25519) signed; the gateway verifies them with the
    public key alone, without asking identity."""

    def __init__(self) -> None:
        self.key = signing_key()
        self.jwk = public_jwk(self.key)

    def access_token(self, subject: uuid.UUID, audience: str, session_id: uuid.UUID,
                     now: datetime, **claims: Any) -> tuple[str, int]:
        expires = now + ACCESS_TOKEN_TTL
        payload = {
            "iss": TOKEN_ISSUER, "sub": str(subject), "aud": audience, "sid": str(session_id),
            "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex, **claims,
        }
        token = jwt.encode(payload, self.key, algorithm="EdDSA",
                           headers={"kid": self.jwk["kid"]})
        return token, int(ACCESS_TOKEN_TTL.total_seconds())

    def jwks(self) -> dict[str, Any]:
        """The keys in the files now (after a rotation: the new and the previous), plus the
        one this process signs with, until it restarts with the new one."""
        published = published_jwks()
        if all(key["kid"] != self.jwk["kid"] for key in published["keys"]):
            published["keys"].append(self.jwk)
        return published


class TokenIssuerProvider(DependencyProvider):
    def setup(self) -> None:
        self.issuer = TokenIssuer()

    def get_dependency(self, worker_ctx: Any) -> TokenIssuer:
        return self.issuer


class EndedSessions:
    """Where identity announces ended sessions to the gateway (Redis). Without REDIS_URL the
    gateway asks identity itself (``session_has_ended``), so there is nothing to write."""

    def __init__(self, store: revocations.SessionRevocations | None) -> None:
        self.store = store

    def announce(self, session_ids: list[uuid.UUID]) -> None:
        if self.store is not None and session_ids:
            self.store.end(session_ids)


class EndedSessionsProvider(DependencyProvider):
    def setup(self) -> None:
        self.ended = EndedSessions(revocations.from_environment())

    def get_dependency(self, worker_ctx: Any) -> EndedSessions:
        return self.ended
