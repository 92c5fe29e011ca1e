"""The read model's rows in and out of SQL: indexes, multi-row upserts, loads, filters."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.chassis.sqlstore import Tx

from .timeline import (
    iso,
)

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
)
# What the staff searches, the dashboards and Open311 filter and sort by. A rebuild drops them and
# builds them again at the end: one sort per index is much cheaper than updating each per event.
INDEXES = {
    "report_views_status_opened": "status, opened_at",
    "report_views_step": "step",
    "report_views_department": "department, status",
    "report_views_crew": "crew_id, status",
    "report_views_service_opened": "service_code, opened_at",
    "report_views_opened": "opened_at",
    "report_views_updated_opened": "updated_at, opened_at",
    "report_views_due": "due_at",
    "report_views_point_opened": "lat, long, opened_at",
}
# Replaced by a wider index above; dropped where an older version left them.
RETIRED_INDEXES = ("report_views_service", "report_views_updated", "report_views_point")
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


def create_indexes(tx: Tx) -> None:
    for index in RETIRED_INDEXES:
        tx.execute(f"DROP INDEX IF EXISTS {index}")
    for index, columns in INDEXES.items():
        tx.execute(f"CREATE INDEX IF NOT EXISTS {index} ON report_views ({columns})")


def upsert_rows(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows with multi-row upserts: one statement per chunk, not one per row (the keys
    are distinct, as one statement requires)."""
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = rows[start:start + UPSERT_CHUNK]
        tx.execute_numbered(_upsert_sql(len(chunk)),
                            [row[column] for row in chunk for column in COLUMNS])


@functools.lru_cache(maxsize=8)
def _upsert_sql(count: int) -> str:
    """The statement for `count` rows, placeholders numbered ($1…): psycopg parses a `%s`
    statement this long again on every call, a sixth of a rebuild's time."""
    width = len(COLUMNS)
    values = ", ".join(
        "(" + ", ".join(f"${row * width + column + 1}" for column in range(width)) + ")"
        for row in range(count))
    return f"INSERT INTO report_views ({', '.join(COLUMNS)}) VALUES {values}{UPSERT_TAIL}"


def load_rows(tx: Tx, key: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """Rows in their stored form (JSON columns as text), found by folio or report id."""
    values = list(values)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(values), 500):  # stay under SQLite's bound-parameter limit
        chunk = values[start:start + 500]
        found = tx.execute(
            f"SELECT {', '.join(COLUMNS)} FROM report_views "
            f"WHERE {key} IN ({', '.join(['%s'] * len(chunk))})", chunk,
        ).fetchall()
        rows.extend(dict(zip(COLUMNS, row, strict=True)) for row in found)
    return rows


def where_clause(
    *,
    status: str | None = None,
    department: str | None = None,
    crew_id: str | None = None,
    service_codes: Sequence[str] | None = None,
    steps: Sequence[str] | None = None,
    folios: Sequence[str] | None = None,
    opened_from: datetime | str | None = None,
    opened_to: datetime | str | None = None,
    updated_since: datetime | str | None = None,
    bbox: Sequence[float] | None = None,
    limit: int = 50,
    offset: int = 0,
    order: str = "opened_at desc",
) -> tuple[str | None, list[Any]]:
    """The WHERE clause of a search and its parameters; None when a filter matches nothing."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of: {', '.join(ORDERS)}")
    if not (1 <= int(limit) <= 1000) or int(offset) < 0:
        raise ValueError("limit must be 1..1000 and offset at least 0")
    if status not in (None, "open", "closed"):
        raise ValueError("status is open or closed")
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    for column, value in (("status", status), ("department", department), ("crew_id", crew_id)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    for column, values in (("service_code", service_codes), ("step", steps), ("folio", folios)):
        if values is not None:
            values = list(values)
            if not values:
                return None, []
            where.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            params.extend(values)
    for condition, moment in (("opened_at >= %s", opened_from), ("opened_at <= %s", opened_to),
                              ("updated_at >= %s", updated_since)):
        if moment is not None:
            where.append(condition)
            params.append(iso_param(moment))
    if bbox is not None:
        min_lat, min_long, max_lat, max_long = (float(v) for v in bbox)
        where.append("lat BETWEEN %s AND %s AND long BETWEEN %s AND %s")
        params.extend((min_lat, max_lat, min_long, max_long))
    return " AND ".join(where), params


def iso_param(value: datetime | str) -> str:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return iso(parsed) or ""
