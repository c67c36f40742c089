"""A small pool of nameko standalone RPC proxies for the gateway's threads.

A ClusterRpcProxy is not thread-safe (shared, it deadlocks) and starting one per request costs
a reply queue each time, so each thread borrows one from the pool. Every call has a timeout.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nameko.exceptions import RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from gateway.metrics import observe_rpc
from gateway.problems import Problem


class RpcPool:
    def __init__(self, amqp_uri: str, size: int = 16, timeout: float = 10.0) -> None:
        self.config = {"AMQP_URI": amqp_uri, "serializer": "json"}
        self.timeout = timeout
        self._idle: queue.LifoQueue[tuple[ClusterRpcProxy, Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def proxy(self, correlation_id: str | None = None) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self.timeout):
            raise Problem(503, "gateway_busy", "Too many requests in flight. Try again.",
                          headers={"Retry-After": "1"})
        entry = None
        try:
            try:
                entry = self._idle.get_nowait()
            except queue.Empty:
                runner = ClusterRpcProxy(self.config, timeout=self.timeout)
                entry = (runner, runner.start())
            # The proxy sends its worker context as headers on every call: this request's id
            # travels into the service's logs and the events it emits.
            entry[1]._worker_ctx.data["correlation_id"] = correlation_id
            yield entry[1]
        except (RpcTimeout, UnknownService, OSError, ConnectionError):
            # A timed-out proxy may still receive the late reply; a broken one cannot be
            # trusted. Drop it and let the next call start a fresh one.
            if entry is not None:
                self._discard(entry)
                entry = None
            raise
        finally:
            if entry is not None:
                self._idle.put(entry)
            self._slots.release()

    def call(self, service: str, method: str, *args: Any, correlation_id: str | None = None,
             **kwargs: Any) -> Any:
        started, ok = time.perf_counter(), False
        try:
            with self.proxy(correlation_id) as cluster:
                result = getattr(getattr(cluster, service), method)(*args, **kwargs)
            ok = True
            return result
        finally:
            observe_rpc(service, method, started, ok)

    def close(self) -> None:
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

    @staticmethod
    def _discard(entry: tuple[ClusterRpcProxy, Any]) -> None:
        with contextlib.suppress(Exception):  # already broken: nothing more to release
            entry[0].stop()
