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
    # Rate limits per client address, shared by every replica through Redis.
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", ""))
    rate_limit_prefix: str = field(default_factory=lambda: os.environ.get(
        "RATE_LIMIT_PREFIX", "clientela"))
    rate_limit_login: str = field(default_factory=lambda: os.environ.get(
        "RATE_LIMIT_LOGIN", "30/minute"))
    rate_limit_register: str = field(default_factory=lambda: os.environ.get(
        "RATE_LIMIT_REGISTER", "10/minute"))
    rate_limit_forgot: str = field(default_factory=lambda: os.environ.get(
        "RATE_LIMIT_FORGOT", "5/minute"))
    rate_limit_checkout: str = field(default_factory=lambda: os.environ.get(
        "RATE_LIMIT_CHECKOUT", "30/minute"))
    rate_limit_exempt: frozenset[str] = field(default_factory=lambda: frozenset(
        a.strip() for a in os.environ.get("RATE_LIMIT_EXEMPT_ADDRESSES", "").split(",")
        if a.strip()))
    # Storefront origins allowed to call the API from a browser (comma-separated; none: off).
    cors_origins: tuple[str, ...] = field(default_factory=lambda: tuple(
        o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()))
