"""Who is calling: access tokens verified here, with identity's public keys, without an RPC."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import jwt
import redis
from flask import current_app, g, request

from gateway.problems import Problem
from messaging.keys import TOKEN_ISSUER
from messaging.revocations import SessionRevocations

log = logging.getLogger(__name__)

STOREFRONT, ADMIN = "storefront", "admin"
REFETCH_AFTER_SECONDS = 30.0  # at most this often, when a token names a key we do not know


def _unauthorized(code: str, detail: str) -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="clientela"'})


class TokenVerifier:
    """Verifies EdDSA access tokens against identity's JWKS, fetched once and again only when
    a token carries an unknown key id (a rotated key), never per request."""

    def __init__(self, fetch_jwks: Callable[[], dict[str, Any]]) -> None:
        self._fetch_jwks = fetch_jwks
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _key(self, kid: str | None) -> jwt.PyJWK | None:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > REFETCH_AFTER_SECONDS
            if kid not in self._keys and (stale or not self._keys):
                jwks = self._fetch_jwks()
                self._keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks["keys"]}
                self._fetched_at = time.monotonic()
            return self._keys.get(kid) if kid else None

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("invalid_token", "The access token is malformed.") from None
        if header.get("alg") != "EdDSA":  # never none, never a symmetric algorithm
            raise _unauthorized("invalid_token", "The access token is not acceptable.")
        key = self._key(header.get("kid"))
        if key is None:
            raise _unauthorized("invalid_token", "The access token is not acceptable.")
        try:
            return jwt.decode(
                token, key.key, algorithms=["EdDSA"], audience=[STOREFRONT, ADMIN],
                issuer=TOKEN_ISSUER, leeway=5,
                options={"require": ["exp", "iat", "sub", "aud", "iss", "sid"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token_expired", "The access token has expired; refresh it.")\
                from None
        except jwt.PyJWTError:
            raise _unauthorized("invalid_token", "The access token is not acceptable.") from None


class SessionCheck:
    """Refuses the access tokens of sessions that ended before their 15 minutes were up
    (logout, password change or reset, a disabled or erased account). One Redis EXISTS per
    authenticated request; without Redis (``make run``), one RPC to identity instead."""

    def __init__(self, store: SessionRevocations | None,
                 ask_identity: Callable[[str], bool]) -> None:
        self.store = store
        self.ask_identity = ask_identity

    def ensure_live(self, session_id: str) -> None:
        try:
            ended = (self.store.has_ended(session_id) if self.store is not None
                     else self.ask_identity(session_id))
        except redis.RedisError as exc:
            # Fail closed: a logged-out token must not work because Redis is away. Guests
            # (and checkout as a guest) need no token and are not affected.
            log.error("session check unavailable: %s", type(exc).__name__)
            raise Problem(503, "service_unavailable", "Sessions cannot be checked right now. "
                          "Try again shortly.", headers={"Retry-After": "2"}) from None
        if ended:
            raise _unauthorized("session_ended", "This session has ended; log in again.")


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def claims_for(audience: str, required: bool = True) -> dict[str, Any] | None:
    """The caller's verified claims for a route of ``audience``; a token of the other audience
    is refused (403), never accepted."""
    token = bearer_token()
    if token is None:
        if required:
            raise _unauthorized("authentication_required", "Log in to use this.")
        return None
    claims = current_app.extensions["token_verifier"].verify(token)
    if claims["aud"] != audience:
        raise Problem(403, "wrong_audience", "This token cannot be used here.")
    current_app.extensions["session_check"].ensure_live(claims["sid"])
    return claims


def customer_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.claims = claims_for(STOREFRONT)
        return view(*args, **kwargs)

    return wrapper


def staff_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.claims = claims_for(ADMIN)
            if roles and g.claims.get("role") not in roles:
                raise Problem(403, "forbidden", "Your role does not allow this.")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def client_info() -> dict[str, str]:
    """What a session list shows about where a login came from."""
    return {"ip": request.remote_addr or "", "user_agent": request.user_agent.string[:200]}
