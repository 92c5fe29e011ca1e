"""The event store's side of "no reader passes over an id": on PostgreSQL, every insert into the
notification log holds a shared lock that a reader's barrier takes exclusively (see follower.py).

`LogRecorder` is eventsourcing's PostgresApplicationRecorder whose one-round-trip insert function
first takes `pg_advisory_xact_lock_shared(<this log's key>)`. Writers never wait for each other
(shared locks do not conflict); the lock only lets a reader wait, at the rare moment it sees a
gap, for every insert in flight. The chassis selects it with eventsourcing's
APPLICATION_RECORDER_TOPIC (see runtime.app_env); CREATE OR REPLACE FUNCTION runs whenever the
application creates its tables, so an existing database gets the new body on the next start.
"""

from __future__ import annotations

import threading
import weakref
import zlib
from abc import ABC, abstractmethod
from typing import Any

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Composed, Identifier, Literal

from shared.chassis.sqlstore import ping_if_idle

TOPIC = "shared.chassis.esrecorder:LogRecorder"
LOCK_CLASS = 0x45585044  # the first of the two advisory-lock keys: ours, the event logs'


def log_lock_key(schema: str, table: str) -> tuple[int, int]:
    """The advisory lock (two int4 keys, a space apart from single-key locks) of one log."""
    key = zlib.crc32(f"{schema}.{table}".encode())
    return LOCK_CLASS, key - (1 << 32) if key >= 1 << 31 else key


class LogRecorder(PostgresApplicationRecorder):
    """Inserts events holding this log's shared advisory lock until they commit."""

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.pre_ping:
            # eventsourcing pings on every checkout (POSTGRES_PRE_PING): a round trip more for
            # each load and each save; the chassis' check pings a connection idle a while.
            # (psycopg_pool keeps the check it was given in `_check` and calls it at checkout.)
            datastore.pool._check = ping_if_idle
        self.log_lock = log_lock_key(self.datastore.schema, self.events_table_name)
        lock_shared = SQL("pg_advisory_xact_lock_shared({0}, {1})").format(
            Literal(self.log_lock[0]), Literal(self.log_lock[1]))
        self.lock_shared_statement = SQL("SELECT ") + lock_shared
        self.sql_create_pg_function_insert_events = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "PERFORM {lock_shared}; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t "
            "(originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            schema=Identifier(self.datastore.schema),
            function=Identifier(self.pg_function_name_insert_events),
            event=Identifier(self.stored_event_type_name),
            lock_timeout=self.datastore.lock_timeout,
            lock_shared=lock_shared,
            channel=Identifier(self.channel_name),
            table=Identifier(self.events_table_name),
        )
        self.sql_create_statements[self.create_insert_function_statement_index] = (
            self.sql_create_pg_function_insert_events)

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        # The pipelined path (POSTGRES_ENABLE_DB_FUNCTIONS off): the same lock, first thing in
        # the transaction, before the notification ids are drawn.
        curs.execute(self.lock_shared_statement, prepare=True)
        super()._insert_events(curs, stored_events, **kwargs)

    def upgrade_insert_function(self) -> bool:
        """Replace an insert function that lacks the lock (tables made by an older version, and
        CREATE_TABLE off since); True when it did."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT prosrc FROM pg_proc WHERE proname = %s AND pronamespace = %s::regnamespace",
                (self.pg_function_name_insert_events, self.datastore.schema)).fetchone()
            if row is not None and "pg_advisory_xact_lock_shared" in row["prosrc"]:
                return False
            conn.execute(self.sql_create_pg_function_insert_events, prepare=False)
        return True


class Finality(ABC):
    """Which notification ids of one log are final: no transaction still in flight can commit
    an id at or below `final`. Shared by every follower of the log in a process."""

    needs_barrier: bool  # False: every id a reader sees is final already

    def __init__(self) -> None:
        self.final = 0
        self._lock = threading.Lock()

    def barrier(self) -> int:
        """Make every id stored so far final; return the highest (0: none)."""
        top = self._barrier()
        with self._lock:
            self.final = max(self.final, top)
        return self.final

    @abstractmethod
    def _barrier(self) -> int:
        """The highest id stored, once nothing below it can still commit."""


class VisibleIsFinal(Finality):
    """SQLite and the in-memory store serialise writers: what a reader sees is final, and a
    rolled-back id is drawn again. `needs_barrier` False: a gap is never waited for."""

    needs_barrier = False

    def __init__(self, recorder: ApplicationRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def _barrier(self) -> int:
        return self.recorder.max_notification_id() or 0


class PostgresBarrier(Finality):
    """Takes the log's lock exclusively (it waits for every insert in flight; new ones queue
    behind it for that moment), then reads the highest id, in one implicit transaction."""

    needs_barrier = True

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        table = SQL("{0}.{1}").format(Identifier(recorder.datastore.schema),
                                      Identifier(recorder.events_table_name))
        if isinstance(recorder, LogRecorder):
            lock: Composed = SQL("SELECT pg_advisory_xact_lock({0}, {1})").format(
                Literal(recorder.log_lock[0]), Literal(recorder.log_lock[1]))
        else:  # eventsourcing's own recorder: a SHARE lock waits for inserts in flight too
            lock = SQL("LOCK TABLE {0} IN SHARE MODE").format(table)
        # Two statements, one round trip: the SELECT takes its snapshot after the lock is held.
        self.statement = lock + SQL("; SELECT max(notification_id) FROM ") + table

    def _barrier(self) -> int:
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.statement, prepare=False)
            curs.nextset()
            row = curs.fetchone()
        return int(row["max"] or 0) if row else 0


_FINALITIES: weakref.WeakKeyDictionary[Any, Finality] = weakref.WeakKeyDictionary()


def finality_for(recorder: ApplicationRecorder) -> Finality:
    """The one Finality of this recorder's log in this process (followers share barriers)."""
    found = _FINALITIES.get(recorder)
    if found is None:
        found = (PostgresBarrier(recorder) if isinstance(recorder, PostgresApplicationRecorder)
                 else VisibleIsFinal(recorder))
        _FINALITIES[recorder] = found
    return found
