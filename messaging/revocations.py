"""Ended sessions: identity writes them, the gateway refuses their access tokens at once.

An access token lives 15 minutes and is verified by its signature alone. When a session ends
early (logout, password change or reset, a disabled or erased account, a proven email), its
session id (the token's ``sid``) goes into Redis for as long as any of its tokens could still
be valid; the gateway checks the id on every authenticated request (one EXISTS, well under a
millisecond). Without REDIS_URL (a laptop's ``make run``) the gateway asks identity instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import redis

KEY_PREFIX = "clientela:session-ended:"
# The longest an access token lives, plus the clock leeway the gateway allows.
REMEMBER_FOR = timedelta(minutes=15, seconds=30)


class SessionRevocations:
    def __init__(self, url: str, socket_timeout: float = 1.0) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                           socket_connect_timeout=socket_timeout)

    def end(self, session_ids: Iterable[Any]) -> None:
        """Record ended sessions. Raises redis errors: a caller must not report a logout that
        did not take (identity rolls its transaction back and the client retries)."""
        ids = [str(session_id) for session_id in session_ids]
        if not ids:
            return
        pipeline = self.client.pipeline(transaction=False)
        for session_id in ids:
            pipeline.set(KEY_PREFIX + session_id, b"1", ex=REMEMBER_FOR)
        pipeline.execute()

    def has_ended(self, session_id: str) -> bool:
        return bool(self.client.exists(KEY_PREFIX + str(session_id)))


def from_environment() -> SessionRevocations | None:
    url = os.environ.get("REDIS_URL", "")
    return SessionRevocations(url) if url else None
