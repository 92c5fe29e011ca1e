"""Which exception answers which wire code: one table per service, built on the chassis' own.

The chassis' table knows what every service meets: marshmallow's ValidationError, the auth
errors, a WireError from another service, and the ways a dependency is down (RPC timeout, a
service not running, the database or the broker unreachable), which are `unavailable` (503).
A service adds its own classes: `ERRORS = BASE.extend({ReportNotFound: not_found, ...})`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import amqp.exceptions
import eventsourcing.persistence as es
import kombu.exceptions
import nameko.exceptions
import psycopg
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from shared.chassis.auth import AuthError, Forbidden, Unauthenticated
from shared.chassis.rpcclient import RpcTimeout
from shared.contracts.errors import WireError

Entry = str | Callable[[Any], WireError]  # a code, or how to build the error from the exc


class ErrorTable:
    """Exception classes to wire errors; the most specific class of an exception wins."""

    def __init__(self, entries: Mapping[type[BaseException], Entry]) -> None:
        self.entries = dict(entries)

    def extend(self, entries: Mapping[type[BaseException], Entry]) -> ErrorTable:
        return ErrorTable({**self.entries, **entries})

    def wire(self, exc: BaseException) -> WireError | None:
        """The wire error `exc` answers, or None for one nobody expected (a 500)."""
        for cls in type(exc).__mro__:
            entry = self.entries.get(cls)
            if entry is not None:
                return WireError(entry) if isinstance(entry, str) else entry(exc)
        return None

    @property
    def classes(self) -> tuple[type[BaseException], ...]:
        """The expected exceptions (nameko logs these without a traceback)."""
        return tuple(self.entries)


def invalid_input(exc: ValidationError) -> WireError:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return WireError("invalid_input", fields=messages)


def auth_error(exc: AuthError) -> WireError:
    code = "forbidden" if exc.status == 403 else "unauthenticated"
    return WireError(code, str(exc) or None, {"authorization": [str(exc) or code]})


def passed_on(exc: WireError) -> WireError:
    return exc


def too_large(exc: RequestEntityTooLarge) -> WireError:
    return WireError("payload_too_large")


# A dependency that is down, restarting or overloaded: the client should retry shortly.
DEPENDENCY_DOWN: tuple[type[BaseException], ...] = (
    RpcTimeout,
    nameko.exceptions.UnknownService,
    nameko.exceptions.ContainerBeingKilled,
    nameko.exceptions.RemoteError,  # another service failed without a code: not our caller's
    psycopg.OperationalError,       # includes psycopg_pool's PoolTimeout
    psycopg.InterfaceError,
    es.OperationalError,            # eventsourcing's wrapping of the driver's errors
    es.InterfaceError,
    es.ConnectionPoolClosedError,
    sqlite3.OperationalError,       # "database is locked"
    amqp.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    ConnectionError,
)

BASE = ErrorTable({
    WireError: passed_on,
    ValidationError: invalid_input,
    AuthError: auth_error,
    Unauthenticated: auth_error,
    Forbidden: auth_error,
    RequestEntityTooLarge: too_large,
    **{cls: "unavailable" for cls in DEPENDENCY_DOWN},
})
