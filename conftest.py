"""Root test configuration: eventlet is monkey-patched before anything opens a socket.

Without the patch, amqp reads block the whole test process (nameko runs on eventlet)."""

import eventlet

eventlet.monkey_patch()

import shared.runtime  # noqa: E402,F401  (PSYCOPG_WAIT_FUNC before psycopg loads)
