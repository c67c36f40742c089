"""Root conftest: eventlet's monkey patching before anything else loads, and the test tiers.

In-process nameko containers (service tests) hang without it, so every pytest run, whatever
its selection, is patched the same way (the end-to-end suites run fine patched too).

The one exception is the browser suite (tests/browser): Playwright's sync API runs its own
asyncio loop, which cannot share a patched thread with the SMTP sink's. It runs in a pytest
process of its own, unpatched, with CLIENTELA_BROWSER_TESTS=1 (`make test` runs both).
"""

import os
import warnings
from pathlib import Path

import pytest

BROWSER_TESTS = os.environ.get("CLIENTELA_BROWSER_TESTS") == "1"

if BROWSER_TESTS:
    # Only the browser suite is collected in that process.
    collect_ignore_glob = ["messaging/*", "services/*", "gateway/*", "bench/*",
                           "tests/e2e/*", "tests/faults/*", "tests/test_*.py"]
else:
    collect_ignore_glob = ["tests/browser/*"]

    # eventlet warns on import that it is in maintenance mode; nameko 2 runs on it, we know.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

    import eventlet

    eventlet.monkey_patch()


# The tiers, by where a test lives (`make test-unit`, `make test-service`, `make test`):
# - e2e: the whole system started as `make run` starts it (tests/e2e, faults, security,
#   browser);
# - service: one service in-process (its use cases' rules) on real PostgreSQL and RabbitMQ
#   (services/*/tests/test_service*.py, messaging's integration tests);
# - unit: the rest, needing no broker or database.
E2E_DIRS = ("tests/e2e", "tests/faults", "tests/security", "tests/browser")
ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        if where.startswith(E2E_DIRS):
            item.add_marker(pytest.mark.e2e)
        elif (where.startswith("services/") and "/tests/test_service" in where) \
                or where.startswith("messaging/tests/test_integration"):
            item.add_marker(pytest.mark.service)
