"""``@rpc`` for every service: nameko's, except that a reply the broker cannot take (it went
away while the request was being handled) no longer kills the whole service.

nameko lets the publish error escape the worker, and the container dies with it: one broker
blip took the orders service down with every request in it (found by tests/faults). Here the
error is logged and the request is left unacknowledged on the dead connection, so RabbitMQ
hands it to a consumer again once connections are back. The caller has had its error by then
and retries; checkout, the request that matters most, is idempotent by its key."""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import OperationalError
from nameko.rpc import Rpc, RpcConsumer

from messaging.errors import ServiceError

log = logging.getLogger(__name__)


class _RefusalsAreOrdinary(logging.Filter):
    """nameko logs an expected exception with its traceback. A ServiceError below 500 is a
    refusal the caller gets as a 4xx (a wrong password, an illegal transition, a duplicate
    name): one INFO line, no traceback. A 5xx one stays a WARNING with its traceback, and an
    unexpected exception an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("(expected) error handling worker") and record.args:
            exc = record.args[-1] if isinstance(record.args, tuple) else None
            if isinstance(exc, ServiceError) and exc.status < 500:
                record.exc_info, record.exc_text = None, None
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = "refused %s: %s %s", (
                    record.args[0], exc.status, exc.code)
        return True


logging.getLogger("nameko.containers").addFilter(_RefusalsAreOrdinary())


class ResilientRpcConsumer(RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        try:
            return super().handle_result(message, result, exc_info)
        except (OperationalError, ConnectionError, OSError) as exc:
            log.warning("rpc reply not sent, broker unreachable: %s", exc)
            return result, exc_info


class ResilientRpc(Rpc):
    rpc_consumer = ResilientRpcConsumer()

    def __init__(self, expected_exceptions: Any = ServiceError, **kwargs: Any) -> None:
        # A ServiceError is the service answering "no", not the service failing.
        super().__init__(expected_exceptions=expected_exceptions, **kwargs)


rpc = ResilientRpc.decorator
