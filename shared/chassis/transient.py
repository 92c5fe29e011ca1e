"""Failures that pass on their own (a database or broker away, busy or restarting), and waiting
them out when a service starts."""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Transient(Exception):
    """Raised by a log follower's handler: try again later, the event itself is not at fault
    (the relay wraps every publish failure in it)."""


@functools.cache
def _transient_types() -> tuple[type[BaseException], ...]:
    import amqp.exceptions
    import kombu.exceptions
    import psycopg
    from eventsourcing import persistence

    return (
        Transient, ConnectionError, TimeoutError, OSError, sqlite3.OperationalError,
        # psycopg's OperationalError covers deadlocks, lock and statement timeouts, a server
        # shutting down and the pool's timeout; eventsourcing wraps them in its own.
        psycopg.OperationalError, psycopg.InterfaceError,
        persistence.OperationalError, persistence.InterfaceError,
        amqp.exceptions.AMQPError, kombu.exceptions.OperationalError,
    )


def is_transient(exc: BaseException) -> bool:
    """True when trying again later may succeed: the failure is the infrastructure's, not the
    data's. A wrapped cause counts too."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, _transient_types()):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
        seen += 1
    return False


def until_ready(build: Callable[[], T], what: str, *, log_every: float = 5.0,
                max_pause: float = 2.0) -> T:
    """`build()`, again and again while it fails transiently (PostgreSQL or RabbitMQ down,
    restarting or busy), with a log line every `log_every` seconds; any other error is raised.
    For a DependencyProvider's setup(): a replica waits for its stores instead of exiting."""
    pause, started, logged = 0.2, time.monotonic(), float("-inf")
    while True:
        try:
            return build()
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if now - logged >= log_every:
                log.warning("%s not ready after %.0f s (%s: %s); retrying", what, now - started,
                            type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc)
                            else "")
                logged = now
        time.sleep(pause)
        pause = min(pause * 2, max_pause)
