"""Identity's settings (environment variables), read once when the service starts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdentityConfig:
    # argon2id's cost: defaults at OWASP's minimum (m=19 MiB, t=2, p=1), raised here.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # Hashes in flight at once (each takes argon2_memory_kib), and how long a login waits for
    # a turn before a 503 with Retry-After: the service's memory bound under a login burst.
    argon2_max_concurrent: int = 4
    argon2_queue_seconds: float = 5.0
