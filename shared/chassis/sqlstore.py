"""A small SQL helper for a service's own tables (read models, positions, processed events).

It opens the same database the service's eventsourcing store uses, chosen by the same environment
variables (PERSISTENCE_MODULE, SQLITE_DBNAME, POSTGRES_*), so a read model and its tracking record
commit in one transaction next to the events they follow. SQL is written once with `%s`
placeholders; the SQLite dialect rewrites them to `?`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import shared.chassis  # noqa: F401  (PSYCOPG_WAIT_FUNC before psycopg is imported)

DDL_LOCK = "expediente-ddl:"
LIBRARY_DDL_LOCK = "expediente-library-ddl:"


class Tx:
    """A transaction's cursor with one placeholder style for both databases."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back): what
        others may only hear of a change once it is there to be read (a wake-up, a count)."""
        self._after_commit.append(callback)

    def committed(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.dialect == "sqlite" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self

    def execute_numbered(self, sql: str, params: Sequence[Any]) -> Tx:
        """A statement with numbered placeholders ($1, $2, … in order): PostgreSQL takes it as
        it is, with no client-side rewriting (worth it for very long statements, which psycopg
        does not cache); SQLite gets `?`."""
        if self.dialect == "sqlite":
            self._cursor.execute(re.sub(r"\$[0-9]+", "?", sql), tuple(params))
            return self
        from psycopg import RawCursor

        with RawCursor(self._cursor.connection) as raw:
            raw.execute(sql, tuple(params))
        return self

    def lock_schema(self) -> Tx:
        """Take the schema's DDL lock for the rest of this transaction: run it before creating
        tables. Replicas starting together on a new database would otherwise race, and
        PostgreSQL's CREATE TABLE IF NOT EXISTS fails against a concurrent one (the catalog's
        unique keys). SQLite needs nothing: BEGIN IMMEDIATE already serialises writers."""
        if self.dialect != "sqlite":
            self._cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s || current_schema()))",
                                 (DDL_LOCK,))
        return self

    def lock(self, key: str) -> Tx:
        """Hold a lock named `key` until this transaction ends: two transactions that each read
        what the other writes (a subscription and an event of the same folio) take their turn,
        and the second one's statements see what the first committed. SQLite needs nothing:
        BEGIN IMMEDIATE already serialises writers."""
        if self.dialect != "sqlite":
            self._cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(self._sql(sql), [tuple(r) for r in rows])

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def has_rows(self) -> bool:
        return self._cursor.description is not None


class SqlStore(ABC):
    dialect = "abstract"

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Tx]:
        """A context manager: commits when the block ends, rolls back if it raises."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[tuple], int]:
        """One statement on its own: (rows, rowcount). On PostgreSQL a single round trip, with
        no BEGIN and COMMIT around it (the statement is its own transaction)."""
        with self.transaction() as tx:
            tx.execute(sql, params)
            rows = tx.fetchall() if tx.has_rows else []
            return rows, tx.rowcount

    def library_schema_lock(self) -> AbstractContextManager[None]:
        """Held while a library creates its tables outside our transactions (eventsourcing's
        event store, when an application starts): one replica at a time. A no-op on SQLite."""
        return nullcontext()

    @abstractmethod
    def close(self) -> None:
        """Release the connections."""

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None, *, name: str = "") -> SqlStore:
        """Build the store from the eventsourcing environment, honouring `<NAME>_` prefixed keys."""
        env = dict(os.environ if env is None else env)

        def get(key: str, default: str | None = None) -> str | None:
            if name and f"{name.upper()}_{key}" in env:
                return env[f"{name.upper()}_{key}"]
            return env.get(key, default)

        module = get("PERSISTENCE_MODULE", "eventsourcing.popo")
        if module == "eventsourcing.postgres":
            return PostgresStore(
                dbname=get("POSTGRES_DBNAME", "expediente") or "",
                host=get("POSTGRES_HOST", "127.0.0.1") or "",
                port=int(get("POSTGRES_PORT", "5432") or 5432),
                user=get("POSTGRES_USER", "postgres") or "",
                password=get("POSTGRES_PASSWORD", "") or "",
                schema=get("POSTGRES_SCHEMA", "") or "",
                lock_timeout=int(get("POSTGRES_LOCK_TIMEOUT", "5") or 5),
                pool_size=int(get("POSTGRES_POOL_SIZE", "5") or 5),
            )
        if module == "eventsourcing.sqlite":
            return SqliteStore(get("SQLITE_DBNAME", ":memory:") or ":memory:")
        return SqliteStore(":memory:")


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        if path not in (":memory:",) and not path.startswith("file:"):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, uri=path.startswith("file:")
        )
        self._conn.execute("PRAGMA busy_timeout = 10000")
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            tx = Tx(cursor, self.dialect)
            try:
                yield tx
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            else:
                cursor.execute("COMMIT")
            finally:
                cursor.close()
        tx.committed()

    def close(self) -> None:
        self._conn.close()


PING_AFTER_IDLE = 5.0  # seconds


def ping_if_idle(conn: Any) -> None:
    """A pool's pre-ping (a connection found dead is dropped and another one taken), skipped for
    a connection lent out less than PING_AFTER_IDLE seconds ago: the pool took it back in good
    order (it drops a broken one), and under load a ping per checkout would be one more round
    trip for every query. Our stores' pools and, with POSTGRES_PRE_PING, the event store's
    (esrecorder.LogRecorder) check with it."""
    from psycopg_pool import ConnectionPool

    now = time.monotonic()
    if now - getattr(conn, "_expediente_lent", -PING_AFTER_IDLE - 1.0) > PING_AFTER_IDLE:
        ConnectionPool.check_connection(conn)
    conn._expediente_lent = now


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(
        self,
        *,
        dbname: str,
        host: str,
        port: int,
        user: str,
        password: str,
        schema: str,
        lock_timeout: int,
        pool_size: int,
    ) -> None:
        from psycopg_pool import ConnectionPool

        options = f"-c lock_timeout={lock_timeout}s"
        if schema:
            options += f" -c search_path={schema}"
        self.schema = schema
        self.conninfo: dict[str, Any] = {
            "dbname": dbname,
            "host": host,
            "port": port,
            "user": user,
            "password": password or None,
            "options": options,
        }
        self._pool = ConnectionPool(
            # Autocommit: `transaction()` says BEGIN and COMMIT itself, and `run()` needs neither.
            kwargs={**self.conninfo, "autocommit": True},
            min_size=1,
            max_size=pool_size,
            check=ping_if_idle,  # pre-ping (a dead connection is replaced), unless just lent
            open=True,
            name=f"expediente-{dbname}",
        )

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            tx = Tx(cursor, self.dialect)
            yield tx
        tx.committed()

    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[tuple], int]:
        with self._pool.connection() as conn:
            cursor = conn.execute(sql, tuple(params))
            rows = list(cursor.fetchall()) if cursor.description is not None else []
            return rows, cursor.rowcount

    @contextmanager
    def library_schema_lock(self) -> Iterator[None]:
        with self.connect() as conn:  # a session lock, gone with the connection at the latest
            conn.execute("SELECT pg_advisory_lock(hashtext(%s || current_schema()))",
                         (LIBRARY_DDL_LOCK,))
            yield

    def connect(self) -> Any:
        """A dedicated autocommit connection, outside the pool (for locks held and LISTEN)."""
        import psycopg

        return psycopg.connect(**self.conninfo, autocommit=True, connect_timeout=5)

    def close(self) -> None:
        self._pool.close()
