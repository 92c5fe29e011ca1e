"""Order per report: a consumer applies a report's events in stream-version order.

RabbitMQ may hand a consumer a report's events out of order (a retried message comes back after
the next one, two workers race) or with a hole (the consumer's queue was made after the report's
first events were published). An ordered consumer keeps, per stream (the CloudEvent `subject`,
the folio), the last version it applied, in the same transaction as its own change:

- an event at or below that version is old news: acked, nothing applied;
- the next version is applied and the position moves on;
- a later version means a gap: the missing events are fetched from their source (tracking, by
  RPC) and applied first, in order, then this one. If the source does not have them all yet the
  event fails and is retried like any failure (backoff, then the dead-letter queue).

The position row is locked while the transaction runs, so two workers holding events of the same
report take turns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shared.chassis.sqlstore import Tx
from shared.contracts.cloudevents import CloudEvent

POSITIONS_DDL = """CREATE TABLE IF NOT EXISTS stream_positions (
    consumer TEXT NOT NULL, subject TEXT NOT NULL, version INTEGER NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (consumer, subject))"""


class NotOrderable(ValueError):
    """An event without a subject or a stream version cannot be put in order."""


class GapNotFilled(RuntimeError):
    """The source did not give every missing version (yet): try again later."""


def stream_version(event: CloudEvent) -> int:
    version = event.extensions.get("streamversion")
    if not event.subject or isinstance(version, bool) or not isinstance(version, int | str):
        raise NotOrderable(f"event {event.id} has no subject or streamversion")
    try:
        return int(version)
    except ValueError:
        raise NotOrderable(f"event {event.id}: streamversion {version!r} is not a number") \
            from None


def last_applied(tx: Tx, consumer: str, subject: str) -> int:
    """The last version applied for `subject`, with its row locked for this transaction."""
    tx.execute("INSERT INTO stream_positions (consumer, subject, version, updated_at) "
               "VALUES (%s, %s, 0, %s) ON CONFLICT (consumer, subject) DO NOTHING",
               (consumer, subject, _now()))
    lock = "" if tx.dialect == "sqlite" else " FOR UPDATE"  # SQLite: the transaction is a lock
    row = tx.execute("SELECT version FROM stream_positions WHERE consumer = %s AND subject = %s"
                     + lock, (consumer, subject)).fetchone()
    return int(row[0]) if row else 0


def advance(tx: Tx, consumer: str, subject: str, version: int) -> None:
    tx.execute("UPDATE stream_positions SET version = %s, updated_at = %s "
               "WHERE consumer = %s AND subject = %s", (version, _now(), consumer, subject))


def fill_gap(event: CloudEvent, last: int, fetched: Iterable[CloudEvent | dict[str, Any]]
             ) -> list[CloudEvent]:
    """The events between `last` and `event`, in order, from what the source gave back; raises
    GapNotFilled if one is missing."""
    target = stream_version(event)
    by_version: dict[int, CloudEvent] = {}
    for item in fetched:
        earlier = item if isinstance(item, CloudEvent) else CloudEvent.from_dict(item)
        if earlier.subject != event.subject:
            continue
        version = stream_version(earlier)
        if last < version < target:
            by_version[version] = earlier
    missing = [v for v in range(last + 1, target) if v not in by_version]
    if missing:
        raise GapNotFilled(f"{event.subject}: versions {missing[0]}..{missing[-1]} not found "
                           f"before version {target}")
    return [by_version[v] for v in range(last + 1, target)]


def _now() -> str:
    return datetime.now(UTC).isoformat()
