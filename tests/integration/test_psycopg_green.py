"""Under eventlet, a PostgreSQL query that waits in the database must not freeze the process.

psycopg's compiled wait function blocks eventlet's hub; `shared.chassis` selects `wait_select`
for anything that runs before it and installs its own green wait (greenwait.py), which asks the
kernel first and gives way to the hub when the socket has to wait. The proof uses no clock: one
green thread waits in PostgreSQL for an advisory lock that only another green thread of the same
process can release. If the hub were blocked, the releasing thread could never run and the waiter
would hit its lock timeout instead."""

from __future__ import annotations

import os
import random
import select

import eventlet
import eventlet.patcher
import psycopg
import psycopg.waiting
import pytest

from shared.chassis import greenwait
from shared.chassis.sqlstore import SqlStore
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def connect(pg_env):
    """Connections to the test PostgreSQL, closed after the test."""
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(
            dbname=pg_env["POSTGRES_DBNAME"], host=pg_env["POSTGRES_HOST"],
            port=pg_env["POSTGRES_PORT"], user=pg_env["POSTGRES_USER"],
            password=pg_env["POSTGRES_PASSWORD"] or None, autocommit=True,
        )
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def lock_key() -> int:
    return random.randint(1, 2**62)


def waiting_for_advisory_lock(observer: psycopg.Connection, pid: int, waiter) -> bool:
    """True once PostgreSQL shows `pid` waiting for an advisory lock; re-raises if the waiting
    green thread already failed (a frozen hub makes it hit its lock timeout)."""
    if waiter.dead:
        waiter.wait()
        raise AssertionError("the waiter finished before anyone released the lock")
    row = observer.execute(
        "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return row == ("Lock", "advisory")


def test_every_service_process_uses_the_green_wait():
    assert os.environ["PSYCOPG_WAIT_FUNC"] == "wait_select"
    assert psycopg.waiting.wait is greenwait.wait_green
    assert psycopg.waiting.wait is not getattr(psycopg.waiting, "wait_c", None)
    # both cooperate only because eventlet replaced `select`
    assert eventlet.patcher.is_monkey_patched("select")
    assert select.select is not eventlet.patcher.original("select").select


def test_a_query_waiting_in_postgres_lets_another_green_thread_run(connect, lock_key):
    holder, waiter, observer = connect(), connect(), connect()
    holder.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
    waiter_pid = waiter.info.backend_pid

    def wait_for_the_lock() -> str:
        waiter.execute("SET lock_timeout = '10s'")
        waiter.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
        waiter.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
        return "got the lock"

    def release_the_lock() -> bool:
        return holder.execute("SELECT pg_advisory_unlock(%s)", (lock_key,)).fetchone()[0]

    pool = eventlet.GreenPool()
    waiting = pool.spawn(wait_for_the_lock)
    # this green thread's own queries go on while the waiter's query is still in PostgreSQL
    wait_for(lambda: waiting_for_advisory_lock(observer, waiter_pid, waiting), timeout=30,
             message="the waiter to block on the advisory lock")
    releasing = pool.spawn(release_the_lock)

    assert releasing.wait() is True
    assert waiting.wait() == "got the lock"
    pool.waitall()


def test_the_services_own_connection_pool_does_not_freeze_the_process(pg_env, connect, lock_key):
    store = SqlStore.from_env(pg_env, name="tracking")
    holder, observer = connect(), connect()
    holder.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
    pids: list[int] = []

    def transaction_that_waits() -> int:
        with store.transaction() as tx:
            pids.append(tx.execute("SELECT pg_backend_pid()").fetchone()[0])
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            return tx.execute("SELECT 42").fetchone()[0]

    try:
        waiting = eventlet.spawn(transaction_that_waits)
        wait_for(lambda: pids and waiting_for_advisory_lock(observer, pids[0], waiting), timeout=30,
                 message="the store's transaction to block on the advisory lock")
        releasing = eventlet.spawn(
            lambda: holder.execute("SELECT pg_advisory_unlock(%s)", (lock_key,)).fetchone()[0]
        )

        assert releasing.wait() is True
        assert waiting.wait() == 42
    finally:
        store.close()


def test_a_query_past_its_deadline_times_out_without_freezing_the_process(connect):
    """psycopg's own timeouts (here LISTEN's notifies(timeout=…)) hold with the green wait, and
    other green threads run meanwhile."""
    listener = connect()
    listener.execute("LISTEN expediente_green_wait_test")
    ticks: list[int] = []

    def tick() -> None:
        for n in range(5):
            ticks.append(n)
            eventlet.sleep(0.01)

    ticking = eventlet.spawn(tick)
    assert list(listener.notifies(timeout=0.3)) == []
    ticking.wait()
    assert ticks == [0, 1, 2, 3, 4]


def test_a_connection_the_server_closed_fails_with_an_error_not_a_hang(connect):
    victim, killer = connect(), connect()
    pid = victim.info.backend_pid
    assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    with eventlet.Timeout(10), pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")


def test_the_store_s_transactions_overlap_and_answer_right(pg_env):
    """Many green threads, each a transaction of several statements on the pool: each reads
    its own answers (nothing crosses between connections) and the work all lands."""
    store = SqlStore.from_env(pg_env, name="tracking")
    try:
        store.run("CREATE TABLE green_counts (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")

        def worker(k: str) -> list[int]:
            seen = []
            for _ in range(20):
                with store.transaction() as tx:
                    tx.execute("INSERT INTO green_counts VALUES (%s, 1) ON CONFLICT (k) DO "
                               "UPDATE SET n = green_counts.n + 1 RETURNING n", (k,))
                    seen.append(tx.fetchone()[0])
                    tx.execute("SELECT n, k FROM green_counts WHERE k = %s", (k,))
                    assert tx.fetchone() == (seen[-1], k)
            return seen

        pool = eventlet.GreenPool()
        answers = list(pool.imap(worker, [f"k{n}" for n in range(12)]))
        assert answers == [list(range(1, 21))] * 12
        rows, _ = store.run("SELECT COUNT(*), SUM(n) FROM green_counts")
        assert rows == [(12, 240)]
    finally:
        store.close()
