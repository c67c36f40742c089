"""Root conftest: eventlet's monkey patching before anything else loads.

In-process nameko containers (service tests) hang without it, so every pytest run, whatever
its selection, is patched the same way (the end-to-end suites run fine patched too).
"""

import warnings

# eventlet warns on import that it is in maintenance mode; nameko 2 runs on it, we know.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()
