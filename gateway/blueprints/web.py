"""The browser apps: the merchant admin at /admin/ and, when enabled, the example storefront.

Both are static files and pure clients of /api/v1 (the admin sends the staff token on every
call, like any other client). The front-end libraries come from npm (gateway/web/package.json,
installed by ``make setup``) and are served from here, never from a CDN.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, send_from_directory

from gateway.problems import Problem

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ADMIN_DIR = WEB_DIR / "admin"
NODE_MODULES = Path(os.environ.get("WEB_VENDOR_DIR", WEB_DIR / "node_modules"))
EXAMPLE_STORE_DIR = Path(os.environ.get(
    "EXAMPLE_STOREFRONT_DIR",
    Path(__file__).resolve().parent.parent.parent / "examples" / "storefront"))

# The only vendor files served, by public name: nothing else under node_modules is reachable.
VENDOR_FILES = {
    "alpine.js": ("alpinejs", "dist/cdn.min.js"),
    "chart.js": ("chart.js", "dist/chart.umd.min.js"),
}

# Scripts only from this origin. Alpine evaluates its attribute expressions with Function(),
# hence 'unsafe-eval'; no inline <script>, no third-party origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

web = Blueprint("web", __name__)


def _static(directory: Path, filename: str) -> Response:
    response = send_from_directory(directory, filename, max_age=0)
    # Revalidated on every load (ETag), so a new release is picked up at once.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@web.get("/admin")
@web.get("/admin/")
def admin_app() -> Response:
    return _static(ADMIN_DIR, "index.html")


@web.get("/admin/<path:filename>")
def admin_asset(filename: str) -> Response:
    return _static(ADMIN_DIR, filename)


@web.get("/assets/vendor/<name>")
def vendor_asset(name: str) -> Response:
    if name not in VENDOR_FILES:
        raise Problem(404, "not_found", "No such file.")
    package, path = VENDOR_FILES[name]
    if not (NODE_MODULES / package / path).is_file():
        raise Problem(503, "web_assets_missing",
                      "The front-end libraries are not installed: run `make setup` "
                      "(npm ci in gateway/web).")
    return _static(NODE_MODULES / package, path)


def example_store_enabled() -> bool:
    return os.environ.get("EXAMPLE_STOREFRONT") == "1"


example_store = Blueprint("example_store", __name__)


@example_store.get("/example-store")
@example_store.get("/example-store/")
@example_store.get("/example-store/<path:path>")
def example_store_page(path: str = "") -> Any:
    """Files by name; any other path (/b/{code}, /recover/{token}, /reset-password, ...: the
    links in emails) gets the page, which routes on location.pathname."""
    if path and "." in path.rsplit("/", 1)[-1] and (EXAMPLE_STORE_DIR / path).is_file():
        return _static(EXAMPLE_STORE_DIR, path)
    return _static(EXAMPLE_STORE_DIR, "index.html")
