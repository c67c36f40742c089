"""The whole system, started the way `make run` starts it: migrate, declare, seed, honcho."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from harness.infra import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
OWNER_EMAIL = "owner@shop.test"
OWNER_PASSWORD = "correct horse battery staple 42"
BIN = Path(sys.executable).parent


class System:
    def __init__(self, workdir: Path, amqp_uri: str, database_urls: dict[str, str],
                 smtp_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.gateway_port = free_port()
        self.database_urls = database_urls
        self.log_path = workdir / "system.log"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AMQP_URI": amqp_uri,
            "SMTP_URL": smtp_url,
            "CLIENTELA_VAR_DIR": str(workdir / "var"),
            "GATEWAY_PORT": str(self.gateway_port),
            "GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}",
            "PAYMENT_PROVIDER": "test",  # card payments on the built-in test page
            # Two gateway processes: rate limits must hold across them (Redis).
            "GATEWAY_WORKERS": "2",
            "REDIS_URL": TEST_REDIS_URL,
            "RATE_LIMIT_PREFIX": f"clientela-test-{uuid.uuid4().hex[:8]}",
            # The test runner's own address is exempt; tests that exercise limits or
            # throttling name another client address in X-Forwarded-For.
            "RATE_LIMIT_EXEMPT_ADDRESSES": "127.0.0.1",
            "STOREFRONT_URL": "http://shop.test",
            # Short delays so retries are seen within a test's patience.
            "RETRY_DELAYS_MS": "200,500,1000",
            "MAIL_RETRY_DELAYS_S": "0.5,1,2",
            "OUTBOX_POLL_SECONDS": "0.3",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            # Tests name the client address in X-Forwarded-For (throttling is per address).
            "TRUSTED_PROXIES": "1",
            "OWNER_EMAIL": OWNER_EMAIL,
            "OWNER_PASSWORD": OWNER_PASSWORD,
            **{f"{service.upper()}_DATABASE_URL": url for service, url in database_urls.items()},
            **{f"{service.upper()}_WEB_ADDRESS": f"127.0.0.1:{free_port()}"
               for service in database_urls},
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1{path}"

    def prepare(self) -> None:
        for step in (["keys"], ["migrate"], ["topology"], ["ensure-owner"], ["seed-demo"]):
            subprocess.run([str(BIN / "clientela"), *step], cwd=REPO, env=self.env, check=True,
                           capture_output=True)

    def start(self, timeout: float = 90.0) -> System:
        self.prepare()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "honcho"), "start", "-f", "Procfile"], cwd=REPO, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for(self._ready, timeout, interval=0.5, message="the gateway's /readyz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"system did not start; log:\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"honcho exited; log:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def sql(self, service: str, query: str, **params: Any) -> list[Any]:
        """Read (or, to stage a fault, change) a service's own database directly: tests may;
        services never do. Committed at the end."""
        engine = create_engine(self.database_urls[service])
        try:
            with engine.begin() as connection:
                return list(connection.execute(text(query), params))
        finally:
            engine.dispose()


def wait_seconds(seconds: float) -> None:
    time.sleep(seconds)


@contextmanager
def replicas(system: System, service: str, extra: int) -> Iterator[None]:
    """Start ``extra`` more processes of a service (``module:Class``), as more honcho lines
    (or `docker compose --scale`) would; stopped on exit."""
    processes = []
    for _ in range(extra):
        env = {**system.env, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
               "SERVICE_NAME": service.split(".")[1]}
        processes.append(subprocess.Popen(
            [str(BIN / "nameko"), "run", "--config", "config.yaml", service], cwd=REPO,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(5 if extra else 0)  # connected and consuming
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
