"""Root test configuration: eventlet is monkey-patched before anything opens a socket.

Without the patch, amqp reads block the whole test process (nameko runs on eventlet)."""

import os

import eventlet

eventlet.monkey_patch()

# The tests run on the development secrets services/*/config.yaml ship (shared/chassis/secrets.py);
# every service process they start inherits this.
os.environ["EXPEDIENTE_ENV"] = "development"

import shared.chassis  # noqa: E402,F401  (PSYCOPG_WAIT_FUNC before psycopg loads)

# Hypothesis loads every installed plugin on import; trio's (selenium's dependency) cannot load on
# eventlet's green sockets, and the fuzz tests need none of them.
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")
