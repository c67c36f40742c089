"""Identity's nameko dependencies: its database, password hashing, and the token issuer."""

from __future__ import annotations

import ctypes
import ctypes.util
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider

from messaging import revocations
from messaging.config import from_environment
from messaging.contracts.identity import IdentityError
from messaging.database import Database
from messaging.errors import ServiceError
from messaging.keys import TOKEN_ISSUER, public_jwk, published_jwks, signing_key
from services.identity.config import IdentityConfig
from services.identity.domain import ACCESS_TOKEN_TTL
from services.identity.models import Base

M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def identity_database() -> Database:
    return Database(Base.metadata, url_env="IDENTITY_DATABASE_URL", sqlite_name="identity.db")


def password_hasher(config: IdentityConfig | None = None) -> PasswordHasher:
    """argon2id; defaults at OWASP's minimum (m=19 MiB, t=2, p=1), raised by configuration."""
    config = config or from_environment(IdentityConfig)
    return PasswordHasher(time_cost=config.argon2_time_cost,
                          memory_cost=config.argon2_memory_kib,
                          parallelism=config.argon2_parallelism)


class Passwords:
    """Hashing runs in a real thread (eventlet.tpool): argon2 would otherwise stall every
    green thread of the service for the length of each hash.

    Each hash takes ``memory_cost`` KiB (19 MiB by default), so the hashes in flight are
    capped (``max_concurrent``): a burst of logins waits its turn, up to ``wait_seconds``,
    then gets a 503 with Retry-After, instead of taking the service past its memory limit."""

    def __init__(self, hasher: PasswordHasher, max_concurrent: int = 4,
                 wait_seconds: float = 5.0) -> None:
        self.hasher = hasher
        self.slots = Semaphore(max_concurrent)
        self.wait_seconds = wait_seconds
        # Verified against when the account does not exist, so "no such email" takes as long
        # as "wrong password".
        self.dummy_hash = hasher.hash(uuid.uuid4().hex)

    def _in_a_slot(self, work: Any, *args: Any) -> Any:
        if not self.slots.acquire(timeout=self.wait_seconds):
            raise ServiceError(IdentityError.BUSY,
                               "Too many logins at this moment; try again shortly.",
                               503, extra={"retry_after": 2})
        try:
            return tpool.execute(work, *args)
        finally:
            self.slots.release()

    def hash(self, password: str) -> str:
        return self._in_a_slot(self.hasher.hash, password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._in_a_slot(self.hasher.verify, password_hash or self.dummy_hash,
                                   password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


def one_malloc_arena() -> None:
    """glibc gives each thread that allocates its own malloc arena and keeps, per arena, the
    memory it freed: the hashing threads' arenas each kept argon2's 19 MiB blocks, and a
    burst left identity hundreds of MiB larger (measured: bench.login_burst). In one arena
    a freed block joins the heap's top, which glibc hands back to the system once no hash is
    using it; the hashing threads hardly ever allocate, so sharing costs nothing (measured:
    the same logins per second). (No effect, and no error, off glibc.)"""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


class PasswordsProvider(DependencyProvider):
    def setup(self) -> None:
        one_malloc_arena()
        config = from_environment(IdentityConfig)
        slots = config.argon2_max_concurrent
        # As many real threads as hashes in flight: each thread's malloc arena keeps one
        # hash's memory, so the threads bound it too (eventlet's default is 20).
        tpool.set_num_threads(slots)
        self.passwords = Passwords(password_hasher(config), max_concurrent=slots,
                                   wait_seconds=config.argon2_queue_seconds)

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


@dataclass(frozen=True)
class IdentityParts:
    """What identity's use cases work with: the service's dependencies as one argument."""

    db: Database
    passwords: Passwords
    tokens: Any
    ended: Any
