"""The gateway: the only public entry, for storefronts and the merchant admin."""

from __future__ import annotations

import os
import re
import uuid

from flask import Flask, Response, g, request
from flask_cors import CORS
from flask_swagger_ui import get_swaggerui_blueprint
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import metrics
from gateway.auth import SessionCheck, TokenVerifier
from gateway.blueprints.accounts import accounts
from gateway.blueprints.admin_customers import admin_customers
from gateway.blueprints.admin_notifications import admin_notifications
from gateway.blueprints.admin_orders import admin_orders
from gateway.blueprints.admin_store import admin_store
from gateway.blueprints.health import health
from gateway.blueprints.me import me
from gateway.blueprints.payments import pay_pages, payments
from gateway.blueprints.storefront import storefront
from gateway.blueprints.web import example_store, example_store_enabled, web
from gateway.config import GatewayConfig
from gateway.csp import docs_policy
from gateway.limits import init_limits
from gateway.problems import Problem, register_error_handlers
from gateway.rpc import RpcPool
from gateway.store import StoreSettingsCache
from messaging.logs import configure_logging, set_correlation_id
from messaging.revocations import SessionRevocations

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def create_app(config: GatewayConfig | None = None) -> Flask:
    config = config or GatewayConfig()
    configure_logging("gateway")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False

    rpc = RpcPool(config.amqp_uri, size=config.rpc_pool_size, timeout=config.rpc_timeout)
    app.extensions["rpc"] = rpc
    app.extensions["store_settings"] = StoreSettingsCache(rpc, ttl=config.settings_ttl)
    app.extensions["token_verifier"] = TokenVerifier(lambda: rpc.call("identity", "get_jwks"))
    app.extensions["session_check"] = SessionCheck(
        SessionRevocations(config.redis_url) if config.redis_url else None,
        lambda session_id: rpc.call("identity", "session_has_ended", session_id,
                                    correlation_id=g.get("request_id")))
    if config.trusted_proxies:
        # Behind N reverse proxies, take the client address from X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=config.trusted_proxies)

    _install_request_hooks(app)
    register_error_handlers(app)
    init_limits(app, config)
    if config.cors_origins:
        CORS(app, resources={r"/api/*": {"origins": list(config.cors_origins)}},
             allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
             expose_headers=["X-Request-ID", "Retry-After", "Location", "Idempotent-Replayed",
                             "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
             max_age=600)
    metrics.install(app)
    _register_blueprints(app)
    return app


def _install_request_hooks(app: Flask) -> None:
    """A request id on every request and answer (X-Request-ID), the headers every answer
    carries, and NUL characters refused in the URL."""

    @app.before_request
    def _request_id() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else str(uuid.uuid4())
        set_correlation_id(g.request_id)
        if "\x00" in request.path or any("\x00" in k or "\x00" in v
                                          for k, v in request.args.items(multi=True)):
            raise Problem(400, "invalid_characters", "The URL must not contain NUL characters.")

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith("/docs") and response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = docs_policy(
                response.get_data(as_text=True))
        set_correlation_id(None)
        return response


def _register_blueprints(app: Flask) -> None:
    """The health checks, the API docs, the API by audience, and the web pages."""
    app.register_blueprint(health)
    # Swagger UI, served from the package's own files (no CDN), reading /openapi.json.
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config={
        "app_name": "Clientela API"}), url_prefix="/docs")
    app.register_blueprint(storefront, url_prefix="/api/v1")
    app.register_blueprint(accounts, url_prefix="/api/v1")
    app.register_blueprint(me, url_prefix="/api/v1")
    app.register_blueprint(payments, url_prefix="/api/v1")
    app.register_blueprint(pay_pages)
    app.register_blueprint(admin_store, url_prefix="/api/v1/admin")
    app.register_blueprint(admin_customers, url_prefix="/api/v1/admin")
    app.register_blueprint(admin_orders, url_prefix="/api/v1/admin")
    app.register_blueprint(admin_notifications, url_prefix="/api/v1/admin")
    app.register_blueprint(web)
    if example_store_enabled():
        app.register_blueprint(example_store)
    if os.environ.get("BENCH_ROUTES") == "1":  # ceilings for bench/, never in production
        from gateway.blueprints.bench import bench

        app.register_blueprint(bench, url_prefix="/_bench")
