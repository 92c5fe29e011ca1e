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
report take turns. The position is also what makes the consumer idempotent: an event it applied
is at or below it, so an ordered consumer records no claim per event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    """The last version applied for `subject`, with its row locked for this transaction: one
    round trip (a first event makes the row; an upsert that changes nothing locks it)."""
    row = tx.execute("INSERT INTO stream_positions (consumer, subject, version, updated_at) "
                     "VALUES (%s, %s, 0, %s) ON CONFLICT (consumer, subject) DO UPDATE SET "
                     "version = stream_positions.version RETURNING version",
                     (consumer, subject, _now())).fetchone()
    return int(row[0]) if row else 0


def take_next(tx: Tx, consumer: str, subject: str, version: int) -> bool:
    """Move the position to `version` if it is the very next one, locking the row: one round
    trip for the common case. False if it is not (old news, a gap, or no row yet for a later
    version): `last_applied` then tells which."""
    if version == 1:  # a new stream (or one a gap check left at 0)
        tx.execute("INSERT INTO stream_positions (consumer, subject, version, updated_at) "
                   "VALUES (%s, %s, 1, %s) ON CONFLICT (consumer, subject) DO UPDATE SET "
                   "version = 1, updated_at = excluded.updated_at "
                   "WHERE stream_positions.version = 0 RETURNING version",
                   (consumer, subject, _now()))
    else:
        tx.execute("UPDATE stream_positions SET version = %s, updated_at = %s WHERE "
                   "consumer = %s AND subject = %s AND version = %s RETURNING version",
                   (version, _now(), consumer, subject, version - 1))
    return tx.fetchone() is not None


def advance(tx: Tx, consumer: str, subject: str, version: int) -> None:
    tx.execute("UPDATE stream_positions SET version = %s, updated_at = %s "
               "WHERE consumer = %s AND subject = %s", (version, _now(), consumer, subject))


def lock_positions(tx: Tx, consumer: str, subjects: Sequence[str]) -> dict[str, int]:
    """`last_applied` for many subjects at once (a consumer's batch): one round trip. The rows
    are locked in sorted order, so two batches sharing subjects never wait on each other in a
    circle (a one-event transaction holds a single position row)."""
    subjects = sorted(set(subjects))
    if not subjects:
        return {}
    now = _now()
    rows = tx.execute(
        "INSERT INTO stream_positions (consumer, subject, version, updated_at) VALUES "
        f"{', '.join(['(%s, %s, 0, %s)'] * len(subjects))} ON CONFLICT (consumer, subject) "
        "DO UPDATE SET version = stream_positions.version RETURNING subject, version",
        [value for subject in subjects for value in (consumer, subject, now)]).fetchall()
    return {str(subject): int(version) for subject, version in rows}


def move_positions(tx: Tx, consumer: str, versions: Mapping[str, int]) -> None:
    """`advance` for many subjects at once: one round trip (rows `lock_positions` locked)."""
    if not versions:
        return
    tx.execute(
        f"WITH moved (subject, version) AS (VALUES {', '.join(['(%s, %s)'] * len(versions))}) "
        "UPDATE stream_positions SET version = moved.version, updated_at = %s FROM moved "
        "WHERE stream_positions.consumer = %s AND stream_positions.subject = moved.subject",
        [*(value for pair in versions.items() for value in pair), _now(), consumer])


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
