"""An ordered consumer's position per stream on a real store: `take_next` moves it only to the
very next version, in one statement that locks the row, so two workers holding the same event
(a redelivery racing the original) apply it once; a row a gap check left at 0 still takes
version 1."""

from __future__ import annotations

import eventlet
import pytest

from shared.chassis import streamorder
from shared.chassis.sqlstore import SqlStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(store_env):
    store = SqlStore.from_env(store_env)
    with store.transaction() as tx:
        tx.execute(streamorder.POSITIONS_DDL)
    yield store
    store.close()


def position(store: SqlStore) -> int:
    with store.transaction() as tx:
        return streamorder.last_applied(tx, "c", "QRO-1")


def take(store: SqlStore, version: int) -> bool:
    with store.transaction() as tx:
        return streamorder.take_next(tx, "c", "QRO-1", version)


def test_only_the_next_version_moves_the_position(store):
    assert not take(store, 2)  # a gap: nothing yet
    assert take(store, 1) and position(store) == 1
    assert not take(store, 1)  # old news
    assert not take(store, 3)  # a gap
    assert take(store, 2) and take(store, 3) and position(store) == 3


def test_a_row_a_gap_check_left_at_zero_still_takes_version_one(store):
    assert position(store) == 0  # last_applied made the row, at 0
    assert take(store, 1) and position(store) == 1


def test_two_workers_with_the_same_event_apply_it_once(pg_env):
    store = SqlStore.from_env(pg_env)
    with store.transaction() as tx:
        tx.execute(streamorder.POSITIONS_DDL)
    assert take(store, 1)
    outcome: list[bool] = []

    def second() -> None:
        outcome.append(take(store, 2))  # waits on the first worker's row lock

    with store.transaction() as tx:
        assert streamorder.take_next(tx, "c", "QRO-1", 2)
        racing = eventlet.spawn(second)
        eventlet.sleep(0.3)
        assert outcome == []  # still waiting: the row is locked until this commits
    racing.wait()
    assert outcome == [False] and position(store) == 2
    store.close()



def test_a_batch_reads_locks_and_moves_many_positions_in_one_statement_each(store):
    assert take(store, 1) and take(store, 2)  # QRO-1 stands at 2
    with store.transaction() as tx:
        assert streamorder.lock_positions(tx, "c", ["QRO-2", "QRO-1", "QRO-2"]) == {
            "QRO-1": 2, "QRO-2": 0}  # a stream never seen gets its row, at 0
        streamorder.move_positions(tx, "c", {"QRO-1": 4, "QRO-2": 1})
    with store.transaction() as tx:
        assert streamorder.lock_positions(tx, "c", ["QRO-1", "QRO-2"]) == {"QRO-1": 4, "QRO-2": 1}
        assert streamorder.lock_positions(tx, "other", ["QRO-1"]) == {"QRO-1": 0}  # per consumer
        streamorder.move_positions(tx, "c", {})  # nothing to move: no statement


def test_batches_sharing_streams_take_turns_and_never_deadlock(pg_env):
    """Each batch locks its rows in the same (sorted) order, whatever order its events came in,
    so two batches over the same reports wait for each other instead of in a circle."""
    store = SqlStore.from_env(pg_env)
    with store.transaction() as tx:
        tx.execute(streamorder.POSITIONS_DDL)
    subjects = [f"QRO-{n}" for n in range(20)]
    errors: list[BaseException] = []

    def batch(order: list[str]) -> None:
        try:
            for _ in range(10):
                with store.transaction() as tx:
                    last = streamorder.lock_positions(tx, "c", order)
                    eventlet.sleep(0.001)  # the other batch asks for its rows meanwhile
                    streamorder.move_positions(tx, "c", {s: v + 1 for s, v in last.items()})
        except BaseException as exc:  # a deadlock would be PostgreSQL killing one of them
            errors.append(exc)

    threads = [eventlet.spawn(batch, subjects), eventlet.spawn(batch, subjects[::-1]),
               eventlet.spawn(batch, subjects[5:] + subjects[:5])]
    for thread in threads:
        thread.wait()
    assert errors == []
    with store.transaction() as tx:
        assert set(streamorder.lock_positions(tx, "c", subjects).values()) == {30}
    store.close()
