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
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.chassis.sqlstore import SqlStore

from ..domainmodel import EVENT_NAMES, Report
from .open311 import (
    Keyed,
    closing_extras,
    first_entries,
    open311_request,
    open311_update,
    public_entries,
)
from .rows import (
    DDL,
    INDEXES,
    JSON_COLUMNS,
    ORDERS,
    SUMMARY_COLUMNS,
    create_indexes,
    iso_param,
    load_rows,
    upsert_rows,
    where_clause,
)
from .timeline import (
    citizen_view,
    evolve,
    new_row,
    staff_view,
    summary,
)

log = logging.getLogger(__name__)

# Open311 reads these columns, photos only as a fallback for the media url, and the timeline only
# when a closing shows in public more than the row holds (see _closing_extras).
OPEN311_COLUMNS = (
    "folio", "service_code", "service_name", "status", "step", "resolution", "duplicate_of",
    "department", "description", "address", "lat", "long", "opened_at", "updated_at", "due_at",
    "closed_at", "media_urls")
UPDATES_CHUNK = 400  # at most, reports read per query by open311_updates
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
            tx.lock_schema()
            for statement in DDL:
                tx.execute(statement)
            create_indexes(tx)
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
                    create_indexes(tx)

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
            rows = {row["report_id"]: row for row in load_rows(tx, "report_id", wanted)}
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
            upsert_rows(tx, [rows[key] for key in sorted(rows)])

    # ---- queries -------------------------------------------------------------------------------

    def _row(self, folio: str) -> dict[str, Any] | None:
        with self.store.transaction() as tx:
            rows = load_rows(tx, "folio", [folio])
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
        where, params = where_clause(
            status=status, department=department, crew_id=crew_id, service_codes=service_codes,
            steps=steps, folios=folios, opened_from=opened_from, opened_to=opened_to,
            updated_since=updated_since, bbox=bbox, limit=limit, offset=offset, order=order)
        if where is None:
            return []
        sql = (f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM report_views "
               f"WHERE {where} ORDER BY {ORDERS[order]} LIMIT %s OFFSET %s")
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

    # ---- Open311: public facts only (no personal data, private or internal notes, actors) ----

    def open311_requests(
        self,
        service_codes: Sequence[str] | None = None,
        folios: Sequence[str] | None = None,
        status: str | None = None,
        opened_from: datetime | str | None = None,
        opened_to: datetime | str | None = None,
        updated_since: datetime | str | None = None,
        bbox: Sequence[float] | None = None,
        limit: int = 50,
        offset: int = 0,
        order: str = "opened_at desc",
    ) -> list[dict[str, Any]]:
        """GET requests: each matching report as Open311 shows it (filters as in `search`)."""
        where, params = where_clause(
            status=status, service_codes=service_codes, folios=folios, opened_from=opened_from,
            opened_to=opened_to, updated_since=updated_since, bbox=bbox, limit=limit,
            offset=offset, order=order)
        if where is None:
            return []
        select = {column: column for column in OPEN311_COLUMNS}
        select["photos"] = "CASE WHEN media_urls = '[]' THEN photos END"
        closings = "CASE WHEN status = 'closed' THEN timeline END"
        select["timeline"] = closings if closing_extras() else "NULL"
        sql = (f"SELECT {', '.join(select.values())} FROM report_views "
               f"WHERE {where} ORDER BY {ORDERS[order]} LIMIT %s OFFSET %s")
        with self.store.transaction() as tx:
            found = tx.execute(sql, [*params, int(limit), int(offset)]).fetchall()
        return [open311_request(dict(zip(select, values, strict=True))) for values in found]

    def open311_updates(self, since: datetime | str, limit: int = 100,
                        service_codes: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """servicerequestupdates: the public timeline entries after `since`, oldest first."""
        if not 1 <= int(limit) <= 1000:
            raise ValueError("limit must be 1..1000")
        limit, after = int(limit), iso_param(since)
        where, params = "1 = 1", []
        if service_codes is not None:
            params = list(service_codes)
            if not params:
                return []
            where = f"service_code IN ({', '.join(['%s'] * len(params))})"
        # A report opened after `since` has all its entries after it, none older than its
        # opening (unless a crew device's clock ran behind). So the reports open across `since`
        # are read whole, then the later ones in opening order until one opened after the last
        # entry kept: a far `since` costs a few chunks, not the whole table.
        kept: list[Keyed] = []
        across = self._scan(f"{where} AND updated_at > %s AND opened_at <= %s",
                            [*params, after, after], "updated_at")
        for folio, _, timeline in across:
            kept.extend(public_entries(folio, json.loads(timeline), after))
            if len(kept) > 8 * limit:  # sort now and then, not per report
                kept = first_entries(limit, kept, [])
        kept = first_entries(limit, kept, [])
        for folio, opened_at, timeline in self._scan(f"{where} AND opened_at > %s",
                                                     [*params, after], "opened_at"):
            if len(kept) == limit and opened_at > kept[-1][0]:
                break
            found = public_entries(folio, json.loads(timeline), after)
            if found:
                kept = first_entries(limit, kept, found)
        return [open311_update(keyed) for keyed in kept]

    def _scan(self, where: str, params: list[Any], key: str) -> Iterator[tuple[str, str, str]]:
        """(folio, key, timeline) of the rows that match, in `key` order, a chunk per query
        (small at first: the caller often stops early)."""
        sql = (f"SELECT folio, {key}, timeline FROM report_views WHERE {where} AND {key} >= %s "
               f"AND ({key} > %s OR folio > %s) ORDER BY {key}, folio LIMIT %s")
        last_key, last_folio, size = "", "", max(1, UPDATES_CHUNK // 8)
        while True:
            with self.store.transaction() as tx:
                rows = tx.execute(sql, [*params, last_key, last_key, last_folio, size]).fetchall()
            yield from rows
            if len(rows) < size:
                return
            last_folio, last_key, size = rows[-1][0], rows[-1][1], min(size * 2, UPDATES_CHUNK)


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
    from ..write.application import TrackingApplication

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
