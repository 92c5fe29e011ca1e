"""Events a log follower could not apply, parked with their error for an operator to list and to
apply again once the cause is fixed (`expediente-<service> failures [--retry] [--id N]`).

A parked row names the event (notification id, type, subject, originator and version) and the
error, never the event's data: that stays in the event store, where the retry reads it again.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from shared.chassis.sqlstore import SqlStore, Tx

FAILURES_DDL = """CREATE TABLE IF NOT EXISTS follower_failures (
    follower TEXT NOT NULL, notification_id BIGINT NOT NULL, event_type TEXT, subject TEXT,
    originator_id TEXT, originator_version BIGINT, error TEXT NOT NULL, parked_at TEXT NOT NULL,
    PRIMARY KEY (follower, notification_id))"""
COLUMNS = ("follower", "notification_id", "event_type", "subject", "originator_id",
           "originator_version", "error", "parked_at")
MAX_ERROR = 2000  # characters of an error kept


@dataclass(frozen=True)
class Failure:
    follower: str
    notification_id: int
    event_type: str | None
    subject: str | None
    originator_id: str | None
    originator_version: int | None
    error: str
    parked_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def text(value: Any, limit: int = 200) -> str:
    """Safe to store anywhere: PostgreSQL refuses U+0000 in text, and errors can be long."""
    return str(value).replace("\x00", "\\x00")[:limit]


def error_text(exc: BaseException) -> str:
    return text(f"{type(exc).__name__}: {exc}", MAX_ERROR)


def park(tx: Tx, follower: str, notification: Any, event_type: str, subject: str,
         error: str) -> None:
    tx.execute(
        f"INSERT INTO follower_failures ({', '.join(COLUMNS)}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (follower, notification_id) "
        "DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at",
        (follower, notification.id, text(event_type), text(subject),
         str(notification.originator_id), notification.originator_version, error, now()))


def parked(store: SqlStore, follower: str, ids: Sequence[int] | None = None) -> list[Failure]:
    """The follower's parked events (those of `ids` only, when given), oldest first."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM follower_failures WHERE follower = %s"
    params: list[Any] = [follower]
    if ids is not None:
        if not ids:
            return []
        sql += f" AND notification_id IN ({', '.join(['%s'] * len(ids))})"
        params += [int(i) for i in ids]
    rows, _ = store.run(sql + " ORDER BY notification_id", params)
    return [Failure(*row) for row in rows]


def count(store: SqlStore, follower: str) -> int:
    rows, _ = store.run("SELECT COUNT(*) FROM follower_failures WHERE follower = %s", (follower,))
    return int(rows[0][0])


def clear(tx: Tx, follower: str, notification_id: int) -> None:
    tx.execute("DELETE FROM follower_failures WHERE follower = %s AND notification_id = %s",
               (follower, notification_id))


def clear_all(tx: Tx, follower: str) -> None:
    tx.execute("DELETE FROM follower_failures WHERE follower = %s", (follower,))


def note_error(store: SqlStore, follower: str, notification_id: int, error: str) -> None:
    store.run("UPDATE follower_failures SET error = %s WHERE follower = %s "
              "AND notification_id = %s", (error, follower, notification_id))


# ---- the operators' command, for any service's CLI -----------------------------------------


def add_failures_command(sub: Any) -> argparse.ArgumentParser:
    """`failures [--retry] [--id N ...] [--follower NAME]` on a service CLI's subparsers."""
    parser = sub.add_parser("failures", help="list the events the projections and the relay "
                                             "parked (JSON); --retry applies them again")
    parser.add_argument("--retry", action="store_true", help="apply them again; the ones that "
                        "now succeed leave the list")
    parser.add_argument("--id", type=int, action="append", dest="ids",
                        help="only this notification id (repeatable)")
    parser.add_argument("--follower", action="append", dest="followers",
                        help="only this follower (repeatable), e.g. reports")
    return parser


def failures_command(followers: Sequence[Any], args: argparse.Namespace) -> dict[str, Any]:
    """What `failures` prints: per follower, its parked events, or what a retry cleared."""
    chosen = [f for f in followers if not args.followers or f.name in args.followers]
    if args.retry:
        return {f.name: f.retry_failures(args.ids) for f in chosen}
    return {f.name: [failure.as_dict() for failure in f.failures(args.ids)] for f in chosen}
