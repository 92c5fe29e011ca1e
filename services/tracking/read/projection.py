"""Tracking's read models: one view row per report, kept by a log follower that follows the log.

ReportProjector is the handler of a LogFollower (shared/chassis/follower.py), which brings the
order, the once-only position, the waiting at gaps and the parking of events that cannot be
applied. The projector applies a batch of events to the rows they touch (each read once, held in
memory for the batch) and writes them back in the follower's transaction. Views are plain dicts,
ready for JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.chassis.follower import Handler, LogFollower
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import existing

from ..domainmodel import EVENT_NAMES, Report, is_folio
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
    RETIRED_INDEXES,
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


# ---- the projector -----------------------------------------------------------------------------


class ReportProjector(Handler):
    """Keeps `report_views` up to date with the application's notification log, and reads it.
    `options` go to its LogFollower (poll_interval, coalesce, leading...); without an `app`
    it only reads."""

    def __init__(self, app: Any, store: SqlStore | None = None, name: str = "reports",
                 **options: Any) -> None:
        self.app = app
        self.store = store or app.sql
        self.name = name
        _create_views(self.store)
        self.follower = (LogFollower(name, app, self, store=self.store, **options)
                         if app is not None else None)

    def position(self) -> int:
        return self._following().position()

    def lag(self) -> int:
        """Notifications stored but not yet in the views."""
        return self._following().lag_events()

    def catch_up(self, batch_size: int = 500) -> int:
        """Apply every notification after the position, a batch per transaction; return how many
        (for the CLI and tests: the service's follower runs on its own, and reads only wait)."""
        return self._following().catch_up(batch_size)

    def rebuild(self, batch_size: int = 2000) -> int:
        """Wipe the views and the position, then apply the whole log again; return how many.
        Until it ends, the views show only the part of the log applied so far."""
        follower = self._following()
        with follower.lock:
            with self.store.transaction() as tx:
                follower.reset(tx)  # the position row first: it waits for a batch in flight
                for index in INDEXES:
                    tx.execute(f"DROP INDEX IF EXISTS {index}")
                tx.execute("DELETE FROM report_views")
            try:
                return follower.catch_up(batch_size)
            finally:
                with self.store.transaction() as tx:
                    create_indexes(tx)

    def _following(self) -> LogFollower:
        if self.follower is None:
            raise TypeError("this projector only reads (it was given no application)")
        return self.follower

    # ---- the follower's handler ----------------------------------------------------------------

    def handle(self, tx: Tx, notifications: Sequence[Any]) -> None:
        """Apply a batch: rows opened in it start fresh, every other row it touches is read
        once, and all are written back with multi-row upserts."""
        events = []
        for notification in notifications:
            event = self.app.mapper.to_domain_event(notification)
            name = EVENT_NAMES.get(type(event).__name__)
            if name is not None and isinstance(event, Report.Event):
                events.append((name, event))
        opened_here = {event.originator_id for n, event in events if n == "opened"}
        wanted = {str(event.originator_id) for _, event in events
                  if event.originator_id not in opened_here}
        rows = {row["report_id"]: row for row in load_rows(tx, "report_id", wanted)}
        for name, event in events:
            key = str(event.originator_id)
            if name == "opened":
                rows[key] = new_row(event)
            row = rows.get(key)
            if row is None:
                log.warning("projection %s: %s v%d of a report never opened (or parked); skipped",
                            self.name, name, event.originator_version)
            elif event.originator_version > row["version"]:
                evolve(row, name, event)
        upsert_rows(tx, [rows[key] for key in sorted(rows)])

    def retry(self, tx: Tx, notification: Any) -> None:
        """A parked event, after a fix: its report's row made again from the whole stream
        (later events kept applying meanwhile). Other events of the stream that still fail
        are left out (they stay parked); this one failing again raises."""
        row = None
        for stored in self.app.recorder.select_events(notification.originator_id):
            try:
                event = self.app.mapper.to_domain_event(stored)
                name = EVENT_NAMES.get(type(event).__name__)
                if name is None or (row is None and name != "opened"):
                    continue
                # A copy: an event that fails half-way leaves the row as it was.
                candidate = new_row(event) if name == "opened" else dict(row)  # type: ignore
                evolve(candidate, name, event)
            except Exception:
                if stored.originator_version == notification.originator_version:
                    raise
                log.warning("projection %s: v%d of %s still fails; left out", self.name,
                            stored.originator_version, notification.originator_id)
                continue
            row = candidate
        if row is not None:
            upsert_rows(tx, [row])

    def describe(self, notification: Any) -> tuple[str, str]:
        event = self.app.mapper.to_domain_event(notification)
        name = EVENT_NAMES.get(type(event).__name__, type(event).__name__)
        folio = getattr(event, "folio", None)
        if folio is None:
            opened = next(iter(self.app.events.get(notification.originator_id, lte=1)), None)
            folio = getattr(opened, "folio", None)
        return name, folio or str(notification.originator_id)

    # ---- queries -------------------------------------------------------------------------------

    def _row(self, folio: str) -> dict[str, Any] | None:
        if not is_folio(folio):
            return None
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


# ---- the operators' command ----------------------------------------------------------------------


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


def _create_views(store: SqlStore) -> None:
    """The view table and its indexes, when missing (a look at the catalog first: creating an
    index that exists still locks the table, in a running batch's way)."""
    present = existing(store, ["report_views", *INDEXES, *RETIRED_INDEXES])
    if {"report_views", *INDEXES} <= present and not present & set(RETIRED_INDEXES):
        return
    with store.transaction() as tx:
        tx.lock_schema()
        for statement in DDL:
            tx.execute(statement)
        create_indexes(tx)
