"""Rate limits (429 + Retry-After) per client address on the routes people abuse: login,
registration, password reset, checkout. Counted in Redis so every gateway replica shares
them; without REDIS_URL (a laptop's make run) each process counts on its own."""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from gateway.config import GatewayConfig
from gateway.problems import Problem, problem_response

log = logging.getLogger(__name__)

# No rate-limit headers on ordinary answers: Flask-Limiter would put Retry-After on every 200
# and 401 of a limited route, and overwrite a service's own (a login lock's real wait) with its
# window's. Retry-After goes on 429 and 503 only, set where the wait is known.
limiter = Limiter(key_func=get_remote_address, headers_enabled=False, strategy="moving-window")


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

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        wait = seconds_until_allowed()
        return problem_response(Problem(
            429, "too_many_requests", "Too many requests from this address; wait and retry.",
            headers={"Retry-After": str(wait)}, extra={"retry_after": wait}))


def seconds_until_allowed() -> int:
    """When the breached limit lets the next request through: in a moving window, when its
    oldest counted request leaves it. Read from the shared store, so every worker agrees."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, math.ceil(current.reset_at - time.time()))


def limit(name: str):
    """The configured limit called ``name`` (read when the request comes, not at import)."""
    from flask import current_app

    return limiter.limit(lambda: current_app.config["clientela.limits"][name])
