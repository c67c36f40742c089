"""In-process nameko containers need eventlet's monkey patching before anything else loads."""

import warnings

# eventlet warns on import that it is in maintenance mode; nameko 2 runs on it, we know.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()
