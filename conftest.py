"""Root conftest: eventlet's monkey patching before anything else loads.

In-process nameko containers (service tests) hang without it, so every pytest run, whatever
its selection, is patched the same way (the end-to-end suites run fine patched too).

The one exception is the browser suite (tests/browser): Playwright's sync API runs its own
asyncio loop, which cannot share a patched thread with the SMTP sink's. It runs in a pytest
process of its own, unpatched, with CLIENTELA_BROWSER_TESTS=1 (`make test` runs both).
"""

import os
import warnings

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
