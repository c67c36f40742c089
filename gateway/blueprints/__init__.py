"""HTTP routes, one blueprint per audience."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from gateway.problems import Problem

MAX_JSON_DEPTH = 10


def rpc_call(service: str, method: str, *args: Any) -> Any:
    """Call a service with this request's id carried along."""
    return current_app.extensions["rpc"].call(service, method, *args,
                                              correlation_id=g.get("request_id"))


def store_settings() -> dict[str, Any]:
    return current_app.extensions["store_settings"].get(g.get("request_id"))


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 4xx problem saying what is wrong with it."""
    if not request.is_json:
        raise Problem(415, "unsupported_media_type", "Send the body as application/json.")
    raw = request.get_data(cache=True)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "invalid_encoding", "The body is not valid UTF-8.") from None
    body = request.get_json(silent=True)
    if body is None:
        raise Problem(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise Problem(422, "validation_failed", "The body must be a JSON object.")
    if _depth(body) > MAX_JSON_DEPTH:
        raise Problem(422, "too_deeply_nested", "The body is nested too deeply.")
    if not _clean_text(body):
        # NUL cannot be stored (PostgreSQL text) and a lone surrogate is not UTF-8: both are
        # refused here, once, rather than failing somewhere deep in a service.
        raise Problem(400, "invalid_characters",
                      "Text must not contain NUL characters or unpaired surrogates.")
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Problem(422, "validation_failed", "The request has unknown fields.",
                      errors={name: ["Unknown field."] for name in unknown})


def _clean_text(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_clean_text(k) and _clean_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_clean_text(v) for v in value)
    return True


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level)
    return level
