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

