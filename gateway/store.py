"""Store settings as the gateway sees them: fetched from identity, cached briefly."""

from __future__ import annotations

import threading
import time
from typing import Any

from gateway.rpc import RpcPool


class StoreSettingsCache:
    """A merchant's change is in force within ``ttl`` seconds on every gateway replica."""

    def __init__(self, rpc: RpcPool, ttl: float = 1.0) -> None:
        self.rpc = rpc
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._fetched_at = 0.0

    def get(self, correlation_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            if self._value is not None and time.monotonic() - self._fetched_at < self.ttl:
                return self._value
        value = self.rpc.call("identity", "get_store_settings", correlation_id=correlation_id)
        with self._lock:
            self._value, self._fetched_at = value, time.monotonic()
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._value = None
