"""Leader election: one replica of a service runs its log followers (the outbox relay and the
projections, shared/chassis/follower.py); the rest stand by, and their reads wait for the leader's.

On PostgreSQL the leader holds a session advisory lock on a connection of its own; if its process
dies, the connection closes and a standby takes over within one poll interval. The same connection
LISTENs to the event store's NOTIFY, so the leader hears of saves made by any replica at once.
On SQLite (embedded, one machine) an exclusive lock on a file beside the database decides.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from shared.chassis.sqlstore import PostgresStore, SqliteStore, SqlStore

log = logging.getLogger(__name__)


class Leadership(ABC):
    """`run()` in a green thread; `leading` is set while this process leads."""

    def __init__(self, name: str, on_wake: Callable[[], None], poll_interval: float = 1.0) -> None:
        self.name = name
        self.on_wake = on_wake
        self.poll_interval = poll_interval
        self.leading = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                held = self.hold()
            except Exception:
                log.warning("%s: leadership check failed", self.name, exc_info=True)
                self.drop()
                held = False
            if held and not self.leading.is_set():
                log.info("%s: this replica now runs the relay and the projections", self.name)
                self.leading.set()
                self.on_wake()
            elif not held and self.leading.is_set():
                log.warning("%s: leadership lost", self.name)
                self.leading.clear()
            if held:
                self.wait_for_saves(self.poll_interval)
            else:
                self.stopping.wait(self.poll_interval)
        self.drop()

    def stop(self) -> None:
        self.stopping.set()

    @abstractmethod
    def hold(self) -> bool:
        """Take the lead if it is free; True while this process holds it."""

    def wait_for_saves(self, timeout: float) -> None:
        self.stopping.wait(timeout)

    def drop(self) -> None:
        self.leading.clear()


class PostgresLeadership(Leadership):
    def __init__(self, store: PostgresStore, name: str, channel: str | None,
                 on_wake: Callable[[], None], poll_interval: float = 1.0) -> None:
        super().__init__(name, on_wake, poll_interval)
        self.store = store
        self.channel = channel
        self.key = zlib.crc32(f"expediente:{store.schema}:{name}".encode())
        self._conn: Any = None

    def hold(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._conn = self.store.connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if not row[0]:
                self.drop()
                return False
            if self.channel:
                self._conn.execute(f'LISTEN "{self.channel}"')
            return True
        self._conn.execute("SELECT 1")  # still connected, so the lock is still ours
        return True

    def wait_for_saves(self, timeout: float) -> None:
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                self.on_wake()
        except Exception:
            log.warning("%s: lost the leader connection", self.name, exc_info=True)
            self.drop()

    def drop(self) -> None:
        super().drop()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # it is gone either way, and so is the lock
                log.debug("closing the leader connection failed", exc_info=True)


class FileLeadership(Leadership):
    def __init__(self, path: str, name: str, on_wake: Callable[[], None],
                 poll_interval: float = 1.0) -> None:
        super().__init__(name, on_wake, poll_interval)
        self.path = f"{path}.{name}.leader"
        self._fd: int | None = None

    def hold(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def drop(self) -> None:
        super().drop()
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


class SoleLeadership(Leadership):
    """An in-memory store has one process by definition."""

    def hold(self) -> bool:
        return True


def leadership_for(store: SqlStore, name: str, on_wake: Callable[[], None],
                   channel: str | None = None, poll_interval: float = 1.0) -> Leadership:
    if isinstance(store, PostgresStore):
        return PostgresLeadership(store, name, channel, on_wake, poll_interval)
    if isinstance(store, SqliteStore) and store.path != ":memory:":
        return FileLeadership(store.path, name, on_wake, poll_interval)
    return SoleLeadership(name, on_wake, poll_interval)
