"""Tracking's read models: one view row per report, kept by a projector that follows the log.

The projector reads stored notifications after its position, applies a batch of them to the rows
they touch (held in memory for the batch) and writes those rows and the new position in one
transaction. The position update names the position it started from, so a second projector (a CLI
rebuild next to the running service) never applies a batch twice: the loser rolls back and reads
again from the winner's position. Views are plain dicts, ready for JSON.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.sqlstore import SqlStore, Tx

from .domainmodel import EVENT_NAMES, Report
from .timeline import citizen_view, evolve, iso, new_row, staff_view, summary

log = logging.getLogger(__name__)

COLUMNS = (
    "folio", "report_id", "service_code", "service_name", "status", "step", "department",
    "crew_id", "channel", "priority", "resolution", "duplicate_of", "citizen_feedback",
    "opened_at", "updated_at", "closed_at", "due_at", "lat", "long", "address", "description",
    "version", "location", "attributes", "media_urls", "timeline", "photos", "materials",
)
JSON_COLUMNS = frozenset(
    ("location", "attributes", "media_urls", "timeline", "photos", "materials")
)
SUMMARY_COLUMNS = (
    "folio", "service_code", "service_name", "status", "step", "department", "crew_id",
    "channel", "priority", "resolution", "duplicate_of", "opened_at", "updated_at", "closed_at",
    "due_at", "lat", "long", "address", "version",
)
DDL = (
    """CREATE TABLE IF NOT EXISTS report_views (
        folio TEXT PRIMARY KEY, report_id TEXT NOT NULL UNIQUE,
        service_code TEXT NOT NULL, service_name TEXT NOT NULL, status TEXT NOT NULL,
        step TEXT NOT NULL, department TEXT NOT NULL, crew_id TEXT, channel TEXT, priority TEXT,
        resolution TEXT, duplicate_of TEXT, citizen_feedback TEXT,
        opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, closed_at TEXT, due_at TEXT,
        lat DOUBLE PRECISION, long DOUBLE PRECISION, address TEXT, description TEXT NOT NULL,
        version INTEGER NOT NULL, location TEXT NOT NULL, attributes TEXT NOT NULL,
        media_urls TEXT NOT NULL, timeline TEXT NOT NULL, photos TEXT NOT NULL,
        materials TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS projection_positions (name TEXT PRIMARY KEY, "
    "position BIGINT NOT NULL)",
)
# What the staff searches and dashboards filter and sort by. A rebuild drops them and builds them
# again at the end: one sort per index is much cheaper than updating eleven indexes per event.
INDEXES = {
    "report_views_status_opened": "status, opened_at",
    "report_views_step": "step",
    "report_views_department": "department, status",
    "report_views_crew": "crew_id, status",
    "report_views_service": "service_code",
    "report_views_opened": "opened_at",
    "report_views_updated": "updated_at",
    "report_views_due": "due_at",
    "report_views_point": "lat, long",
}
UPSERT_ROW = f"({', '.join(['%s'] * len(COLUMNS))})"
UPSERT_TAIL = " ON CONFLICT (folio) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in COLUMNS if c != "folio")
UPSERT_CHUNK = 500  # rows per statement: 14,000 parameters, under both databases' limits
ORDERS = {
    "opened_at desc": "opened_at DESC, folio DESC",
    "opened_at asc": "opened_at ASC, folio ASC",
    "updated_at desc": "updated_at DESC, folio DESC",
    "updated_at asc": "updated_at ASC, folio ASC",
    "due_at asc": "due_at IS NULL, due_at ASC, folio ASC",
}
COUNTABLE = ("step", "department", "status", "service_code", "crew_id", "priority", "resolution")


class _PositionMoved(Exception):
    """Another projector applied this batch first; read again from its position."""


# ---- the projector -----------------------------------------------------------------------------


class ReportProjector:
    """Keeps `report_views` up to date with the application's notification log, and reads it."""

    def __init__(self, app: Any, store: SqlStore | None = None, name: str = "reports") -> None:
        self.app = app
        self.store = store or app.sql
        self.name = name
        self._lock = threading.Lock()
        with self.store.transaction() as tx:
            for statement in DDL:
                tx.execute(statement)
            _create_indexes(tx)
            tx.execute("INSERT INTO projection_positions (name, position) VALUES (%s, 0) "
                       "ON CONFLICT (name) DO NOTHING", (name,))

    def position(self) -> int:
        with self.store.transaction() as tx:
            row = tx.execute("SELECT position FROM projection_positions WHERE name = %s",
                             (self.name,)).fetchone()
        return int(row[0]) if row else 0

    def lag(self) -> int:
        """Notifications stored but not yet in the views."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - self.position())

    def catch_up(self, batch_size: int = 500) -> int:
        """Apply every notification after the position, a batch per transaction; return how many."""
        with self._lock:
            return self._catch_up(batch_size)

    def rebuild(self, batch_size: int = 2000) -> int:
        """Wipe the views and the position, then apply the whole log again; return how many.
        Until it ends, the views show only the part of the log applied so far."""
        with self._lock:
            with self.store.transaction() as tx:
                # The position row first: it waits for a batch another process has in flight.
                tx.execute("UPDATE projection_positions SET position = 0 WHERE name = %s",
                           (self.name,))
                for index in INDEXES:
                    tx.execute(f"DROP INDEX IF EXISTS {index}")
                tx.execute("DELETE FROM report_views")
            try:
                return self._catch_up(batch_size)
            finally:
                with self.store.transaction() as tx:
                    _create_indexes(tx)

    def _catch_up(self, batch_size: int) -> int:
        applied = 0
        while True:
            position = self.position()
            notifications = self.app.recorder.select_notifications(position + 1, batch_size)
            if not notifications:
                return applied
            try:
                self._apply_batch(position, notifications)
            except _PositionMoved:
                log.info("projection %s: another projector moved past %d; reading again",
                         self.name, position)
                continue
            applied += len(notifications)
            if len(notifications) < batch_size:
                return applied
            time.sleep(0)  # under eventlet, let other green threads run between batches

    def _apply_batch(self, position: int, notifications: Sequence[Any]) -> None:
        events = []
        for notification in notifications:
            event = self.app.mapper.to_domain_event(notification)
            name = EVENT_NAMES.get(type(event).__name__)
            if name is not None and isinstance(event, Report.Event):
                events.append((name, event))
        # Rows opened in this batch start fresh; every other row it touches is read once.
        opened_here = {event.originator_id for n, event in events if n == "opened"}
        wanted = {str(event.originator_id) for _, event in events
                  if event.originator_id not in opened_here}
        with self.store.transaction() as tx:
            moved = tx.execute(
                "UPDATE projection_positions SET position = %s WHERE name = %s AND position = %s",
                (notifications[-1].id, self.name, position),
            ).rowcount
            if moved != 1:
                raise _PositionMoved
            rows = {row["report_id"]: row for row in _load(tx, "report_id", wanted)}
            for name, event in events:
                key = str(event.originator_id)
                if name == "opened":
                    rows[key] = new_row(event)
                row = rows.get(key)
                if row is None:
                    log.warning("projection %s: %s v%d of a report never opened; skipped",
                                self.name, name, event.originator_version)
                elif event.originator_version > row["version"]:
                    evolve(row, name, event)
            _upsert(tx, [rows[key] for key in sorted(rows)])

    # ---- queries -------------------------------------------------------------------------------

    def _row(self, folio: str) -> dict[str, Any] | None:
        with self.store.transaction() as tx:
            rows = _load(tx, "folio", [folio])
        if not rows:
            return None
        return {c: json.loads(v) if c in JSON_COLUMNS else v for c, v in rows[0].items()}

    def public_view(self, folio: str) -> dict[str, Any] | None:
        """The citizen's status page: no personal data, no private or internal notes."""
        row = self._row(folio)
        return None if row is None else citizen_view(row, "public")

    def private_view(self, folio: str) -> dict[str, Any] | None:
        """What the holder of the access token sees: the public view plus private comments."""
        row = self._row(folio)
        return None if row is None else citizen_view(row, "private")

    def staff_view(self, folio: str) -> dict[str, Any] | None:
        """Everything, internal notes and actors included (never the access token hash)."""
        row = self._row(folio)
        return None if row is None else staff_view(row)

    def search(
        self,
        status: str | None = None,
        department: str | None = None,
        crew_id: str | None = None,
        service_codes: Sequence[str] | None = None,
        steps: Sequence[str] | None = None,
        opened_from: datetime | str | None = None,
        opened_to: datetime | str | None = None,
        bbox: Sequence[float] | None = None,
        folios: Sequence[str] | None = None,
        updated_since: datetime | str | None = None,
        limit: int = 50,
        offset: int = 0,
        order: str = "opened_at desc",
    ) -> list[dict[str, Any]]:
        """Summary rows of the reports that match every filter given (dates inclusive; bbox is
        min_lat, min_long, max_lat, max_long). An empty list filter matches nothing."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of: {', '.join(ORDERS)}")
        if not (1 <= int(limit) <= 1000) or int(offset) < 0:
            raise ValueError("limit must be 1..1000 and offset at least 0")
        if status not in (None, "open", "closed"):
            raise ValueError("status is open or closed")
        where, params = ["1 = 1"], []
        for column, value in (("status", status), ("department", department),
                              ("crew_id", crew_id)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        for column, values in (("service_code", service_codes), ("step", steps),
                               ("folio", folios)):
            if values is not None:
                values = list(values)
                if not values:
                    return []
                where.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
                params.extend(values)
        for condition, value in (("opened_at >= %s", opened_from), ("opened_at <= %s", opened_to),
                                 ("updated_at >= %s", updated_since)):
            if value is not None:
                where.append(condition)
                params.append(_iso_param(value))
        if bbox is not None:
            min_lat, min_long, max_lat, max_long = (float(v) for v in bbox)
            where.append("lat BETWEEN %s AND %s AND long BETWEEN %s AND %s")
            params.extend((min_lat, max_lat, min_long, max_long))
        sql = (f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM report_views "
               f"WHERE {' AND '.join(where)} ORDER BY {ORDERS[order]} LIMIT %s OFFSET %s")
        with self.store.transaction() as tx:
            found = tx.execute(sql, [*params, int(limit), int(offset)]).fetchall()
        return [summary(dict(zip(SUMMARY_COLUMNS, values, strict=True))) for values in found]

    def counts(self, by: str = "step", status: str | None = None) -> dict[str, int]:
        """How many reports per step, department or status (optionally only open or closed)."""
        if by not in COUNTABLE:
            raise ValueError(f"count by one of: {', '.join(COUNTABLE)}")
        sql = f"SELECT {by}, COUNT(*) FROM report_views WHERE {by} IS NOT NULL"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = %s"
            params.append(status)
        with self.store.transaction() as tx:
            found = tx.execute(sql + f" GROUP BY {by} ORDER BY {by}", params).fetchall()
        return {key: int(n) for key, n in found}


# ---- rows in and out of SQL ----------------------------------------------------------------------


def _create_indexes(tx: Tx) -> None:
    for index, columns in INDEXES.items():
        tx.execute(f"CREATE INDEX IF NOT EXISTS {index} ON report_views ({columns})")


def _upsert(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows with multi-row upserts: one statement per chunk, not one per row (the keys
    are distinct, as one statement requires)."""
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = rows[start:start + UPSERT_CHUNK]
        tx.execute(
            f"INSERT INTO report_views ({', '.join(COLUMNS)}) VALUES "
            + ", ".join([UPSERT_ROW] * len(chunk)) + UPSERT_TAIL,
            [row[column] for row in chunk for column in COLUMNS],
        )


def _load(tx: Tx, key: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """Rows in their stored form (JSON columns as text), found by folio or report id."""
    values, rows = list(values), []
    for start in range(0, len(values), 500):  # stay under SQLite's bound-parameter limit
        chunk = values[start:start + 500]
        found = tx.execute(
            f"SELECT {', '.join(COLUMNS)} FROM report_views "
            f"WHERE {key} IN ({', '.join(['%s'] * len(chunk))})", chunk,
        ).fetchall()
        rows.extend(dict(zip(COLUMNS, row, strict=True)) for row in found)
    return rows


def _iso_param(value: datetime | str) -> str:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return iso(parsed) or ""


# ---- running it ----------------------------------------------------------------------------------


def run_forever(projector: ReportProjector, wake_event: threading.Event,
                stop_event: threading.Event, poll_interval: float = 1.0,
                max_backoff: float = 30.0, coalesce: float = 0.02,
                leading: threading.Event | None = None) -> None:
    """Catch up whenever a save wakes us (or every poll_interval) until stopped; a failed round
    is logged and retried with backoff, so the loop never dies silently. Fit for a green thread.
    `coalesce` trades a few milliseconds of view freshness for far fewer rounds under load;
    `leading`, when given, pauses the loop while another replica leads."""
    backoff = min(0.5, max_backoff)
    while not stop_event.is_set():
        if leading is not None and not leading.is_set():  # another replica keeps the views
            leading.wait(poll_interval)
            continue
        wake_event.clear()  # before catching up, so a save during the round wakes the next one
        try:
            projector.catch_up()
        except Exception:
            log.exception("projection %s: catch-up failed; retrying in %.1fs",
                          projector.name, backoff)
            stop_event.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        backoff = min(0.5, max_backoff)
        if wake_event.wait(poll_interval) and coalesce:
            # Under load saves arrive every few milliseconds: gather them into one batch.
            stop_event.wait(coalesce)


def rebuild_command(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`expediente rebuild-projection tracking`: rebuild the report views from every event."""
    from .application import TrackingApplication

    app = TrackingApplication(env=env)
    try:
        projector = ReportProjector(app)
        started = time.perf_counter()
        events = projector.rebuild()
        seconds = time.perf_counter() - started
    finally:
        app.close()
    return {"events": events, "seconds": round(seconds, 3),
            "events_per_second": round(events / seconds, 1) if seconds > 0 else None}
