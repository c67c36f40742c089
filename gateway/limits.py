"""Rate limits (429 + Retry-After) per client address on the routes people abuse: login,
registration, password reset, checkout. Counted in Redis so every gateway replica shares
them; without REDIS_URL (a laptop's make run) each process counts on its own."""

from __future__ import annotations

import logging

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

limiter = Limiter(key_func=get_remote_address, headers_enabled=True, strategy="moving-window")


def init_limits(app: Flask, config: GatewayConfig) -> None:
    if not config.redis_url:
        log.warning("REDIS_URL is not set: rate limits are counted per gateway process")
    app.config.update(
        RATELIMIT_STORAGE_URI=config.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX=config.rate_limit_prefix,
        # Redis down must not take checkout down with it: count in memory meanwhile.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    app.config["clientela.limits"] = {
        "login": config.rate_limit_login, "register": config.rate_limit_register,
        "forgot": config.rate_limit_forgot, "checkout": config.rate_limit_checkout,
    }
    exempt = config.rate_limit_exempt
    limiter.request_filter(lambda: request.remote_addr in exempt)
    limiter.init_app(app)


def limit(name: str):
    """The configured limit called ``name`` (read when the request comes, not at import)."""
    from flask import current_app

    return limiter.limit(lambda: current_app.config["clientela.limits"][name])
