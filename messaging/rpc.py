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

log = logging.getLogger(__name__)


class ResilientRpcConsumer(RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        try:
            return super().handle_result(message, result, exc_info)
        except (OperationalError, ConnectionError, OSError) as exc:
            log.warning("rpc reply not sent, broker unreachable: %s", exc)
            return result, exc_info


class ResilientRpc(Rpc):
    rpc_consumer = ResilientRpcConsumer()


rpc = ResilientRpc.decorator
