"""RFC 9457 problem details: every error the gateway returns is one of these."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from kombu.exceptions import OperationalError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from werkzeug.exceptions import HTTPException

from messaging.errors import ServiceError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "errors"})


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        # Extension members (RFC 9457 §3.2) never overwrite the standard ones.
        self.extra = {k: v for k, v in (extra or {}).items() if k not in RESERVED_MEMBERS}


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": f"/problems/{problem.code}",
        "title": problem.code.replace("_", " ").capitalize(),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = PROBLEM_JSON
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        headers = {}
        if exc.status in (409, 429, 503) and "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return problem_response(
            Problem(exc.status, exc.code, exc.detail, errors=exc.errors or None,
                    headers=headers, extra=exc.extra)
        )

    @app.errorhandler(RpcTimeout)
    def _timeout(exc: RpcTimeout) -> Response:
        log.warning("rpc timed out")
        return problem_response(Problem(504, "upstream_timeout",
                                        "A service did not answer in time. Try again.",
                                        headers={"Retry-After": "2"}))

    @app.errorhandler(UnknownService)
    def _unknown_service(exc: UnknownService) -> Response:
        log.error("rpc to a service that is not running: %s", exc)
        return problem_response(Problem(503, "service_unavailable",
                                        "A service is unavailable. Try again shortly.",
                                        headers={"Retry-After": "5"}))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        problem = Problem(exc.code or 500, code, exc.description or exc.name)
        response = problem_response(problem)
        if exc.code == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(RemoteError)
    def _remote(exc: RemoteError) -> Response:
        log.error("unexpected error in a service: %s", exc.exc_type)
        return problem_response(Problem(500, "internal_error",
                                        "Something went wrong on our side."))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, (ConnectionError, OSError, OperationalError)):
            log.error("broker connection problem: %s", exc)
            return problem_response(Problem(503, "service_unavailable",
                                            "A service is unavailable. Try again shortly.",
                                            headers={"Retry-After": "5"}))
        log.exception("unhandled error")
        return problem_response(Problem(500, "internal_error", "Something went wrong on our side."))
