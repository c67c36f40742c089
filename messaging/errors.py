"""Domain errors that cross RPC intact, so the gateway can turn them into problem+json."""

from __future__ import annotations

from typing import Any

from nameko.exceptions import deserialize_to_instance

# Every service answers bad input with this code (422, per-field errors); each service's own
# codes are its contract's catalogue (messaging.contracts.<service>: IdentityError, ...).
VALIDATION_FAILED = "validation_failed"


@deserialize_to_instance

class ServiceError(Exception):
    """An expected, client-caused failure: a code, a human detail, an HTTP status, field errors.

    Registered with nameko so an RPC caller gets this class back (not a RemoteError), with the
    same arguments. Arguments stay JSON-safe for that reason.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        status: int = 400,
        errors: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        # nameko stringifies non-string arguments on the way through RPC: take the int back.
        status = int(status)
        super().__init__(code, detail, status, errors or {}, extra or {})
        self.code = code
        self.detail = detail
        self.status = status
        self.errors = errors or {}
        self.extra = extra or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def load_or_raise(schema: Any, data: object) -> Any:
    """Validate input with a marshmallow schema; errors become a 422 with per-field errors."""
    from marshmallow import ValidationError

    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ServiceError(
            VALIDATION_FAILED, "The request has invalid fields.", 422, errors=exc.messages
        ) from None
