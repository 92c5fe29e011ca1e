"""Where each log follower of a service is: one row per follower in `follower_positions`, moved
with a compare-and-set in the transaction that applies its batch."""

from __future__ import annotations

from shared.chassis import parked
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing

POSITIONS_DDL = """CREATE TABLE IF NOT EXISTS follower_positions (
    name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at TEXT)"""
# Positions kept by earlier versions, copied once when follower_positions is made (table: the
# suffix added to each name; the relay's follower is "<application>.relay").
LEGACY_POSITIONS = {"outbox_positions": ".relay", "projection_positions": ""}


class PositionMoved(Exception):
    """Another follower of the same name applied this batch first."""


def create(store: SqlStore, name: str) -> None:
    """The followers' tables when missing, and this follower's row (at 0) when it has none;
    each in a statement or short transaction of its own, taking no lock a batch may hold."""
    create_missing(store, {"follower_positions": POSITIONS_DDL,
                           "follower_failures": parked.FAILURES_DDL},
                   look_for=LEGACY_POSITIONS, then=_copy_legacy_positions)
    ensure(store, name)


def ensure(store: SqlStore, name: str) -> None:
    if not store.run("SELECT 1 FROM follower_positions WHERE name = %s", (name,))[0]:
        store.run("INSERT INTO follower_positions (name, position, updated_at) "
                  "VALUES (%s, 0, %s) ON CONFLICT (name) DO NOTHING", (name, parked.now()))


def stored(store: SqlStore, name: str) -> int:
    rows, _ = store.run("SELECT position FROM follower_positions WHERE name = %s", (name,))
    return int(rows[0][0]) if rows else 0


def move(tx: Tx, name: str, old: int, new: int) -> None:
    """From `old` to `new`, or PositionMoved if it is no longer at `old`. Run it first in the
    transaction: a rebuild elsewhere then waits here, not after the batch's other writes."""
    moved = tx.execute("UPDATE follower_positions SET position = %s, updated_at = %s "
                       "WHERE name = %s AND position = %s",
                       (new, parked.now(), name, old)).rowcount
    if moved != 1:
        raise PositionMoved


def hold(tx: Tx, name: str) -> None:
    """Lock the follower's row for the rest of the transaction (its batches wait meanwhile)."""
    tx.execute("UPDATE follower_positions SET updated_at = updated_at WHERE name = %s", (name,))


def reset(tx: Tx, name: str) -> None:
    tx.execute("UPDATE follower_positions SET position = 0, updated_at = %s WHERE name = %s",
               (parked.now(), name))


def _copy_legacy_positions(tx: Tx, present: set[str]) -> None:
    """Once, as follower_positions is made: the positions an earlier version kept, so an
    existing deployment neither replays its whole log nor skips any of it."""
    if "follower_positions" in present:
        return
    for table, suffix in LEGACY_POSITIONS.items():
        if table in present:
            tx.execute(f"INSERT INTO follower_positions (name, position, updated_at) "
                       f"SELECT name || %s, position, %s FROM {table} WHERE 1 = 1 "
                       "ON CONFLICT (name) DO NOTHING", (suffix, parked.now()))
