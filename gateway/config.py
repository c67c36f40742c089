"""Gateway configuration, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GatewayConfig:
    amqp_uri: str = field(default_factory=lambda: os.environ.get(
        "AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    rpc_timeout: float = field(default_factory=lambda: float(os.environ.get("RPC_TIMEOUT", "10")))
    rpc_pool_size: int = field(default_factory=lambda: int(os.environ.get("RPC_POOL_SIZE", "16")))
    settings_ttl: float = field(default_factory=lambda: float(
        os.environ.get("STORE_SETTINGS_TTL", "1.0")))
    max_body_bytes: int = field(default_factory=lambda: int(
        os.environ.get("MAX_BODY_BYTES", str(64 * 1024))))
    trusted_proxies: int = field(default_factory=lambda: int(
        os.environ.get("TRUSTED_PROXIES", "0")))
