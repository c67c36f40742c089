"""In-process nameko containers need eventlet's monkey patching before anything else loads."""

import eventlet

eventlet.monkey_patch()
