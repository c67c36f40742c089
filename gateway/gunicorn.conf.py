"""gunicorn settings for the gateway (gthread workers: gunicorn 26+ has no eventlet worker)."""

import os
import tempfile
from typing import Any

# Metrics from every worker in one place (gateway/metrics.py); a fresh directory per start,
# so counters never carry over from a previous run.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clientela-gateway-metrics-")

bind = f"{os.environ.get('GATEWAY_HOST', '127.0.0.1')}:{os.environ.get('GATEWAY_PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
threads = int(os.environ.get("GATEWAY_THREADS", "8"))
timeout = 30
graceful_timeout = 10
accesslog = None  # the app logs requests as JSON; no second, unstructured access log


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exits stops counting in the live gauges (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
