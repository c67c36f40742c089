"""Content-Security-Policy for the HTML the API itself serves: printable orders and labels,
and the API docs (/docs). The admin's own policy is in gateway/blueprints/web.py."""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Response

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# A printout runs no script but its print button's handler (allowed by its hash), loads
# nothing, submits nothing: an order's text, however hostile, can do nothing there.
PRINTOUT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'unsafe-hashes' {_sha256('window.print()')}; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def printout(html: str) -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PRINTOUT_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def docs_policy(html: str) -> str:
    """Swagger UI: its scripts from this origin, and its one inline configuration script by
    hash (computed from the page served, so a change of version needs no edit here)."""
    hashes = " ".join(_sha256(script) for script in _INLINE_SCRIPT.findall(html))
    return ("default-src 'none'; "
            f"script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
