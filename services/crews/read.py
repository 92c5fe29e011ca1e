"""Crews' read models: a row per crew and per material, kept by a log follower.

The projector writes each changed crew or material as it now stands (loaded from the event
store, whose snapshots keep a long-lived crew's load short), so the rules live only in the
domain model; a row's `version` only moves forward, so a replayed or rebuilt batch changes
nothing that is newer. Rows are plain dicts, ready for JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.chassis.follower import Handler, LogFollower
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing

from .domainmodel import Crew, Material

# Each table and index by name: created at start-up only when missing (shared/chassis/tables.py).
DDL = {
    "crews_view": "CREATE TABLE IF NOT EXISTS crews_view (code TEXT PRIMARY KEY,"
    " name TEXT NOT NULL, department TEXT NOT NULL, availability TEXT NOT NULL,"
    " on_shift INTEGER NOT NULL, members TEXT NOT NULL, lat DOUBLE PRECISION,"
    " long DOUBLE PRECISION, position_at TEXT, version INTEGER NOT NULL)",
    "crews_view_department":
        "CREATE INDEX IF NOT EXISTS crews_view_department ON crews_view (department, code)",
    "materials_view": "CREATE TABLE IF NOT EXISTS materials_view (code TEXT PRIMARY KEY,"
    " description TEXT NOT NULL, unit TEXT NOT NULL, prices TEXT NOT NULL,"
    " version INTEGER NOT NULL)",
}
CREW_COLUMNS = ("code", "name", "department", "availability", "on_shift", "members", "lat",
                "long", "position_at", "version")
MATERIAL_COLUMNS = ("code", "description", "unit", "prices", "version")


def crew_row(crew: Crew) -> dict[str, Any]:
    position = crew.position or {}
    at = position.get("at")
    return {"code": crew.code, "name": crew.name, "department": crew.department,
            "availability": crew.availability, "on_shift": int(crew.on_shift),
            "members": json.dumps(crew.members, ensure_ascii=False, sort_keys=True),
            "lat": position.get("lat"), "long": position.get("long"),
            "position_at": at.isoformat() if isinstance(at, datetime) else None,
            "version": crew.version}


def material_row(material: Material) -> dict[str, Any]:
    prices = [{"effective_at": at.isoformat(), "unit_cost": str(cost)}
              for at, cost in material.prices]
    return {"code": material.code, "description": material.description, "unit": material.unit,
            "prices": json.dumps(prices), "version": material.version}


def upsert(tx: Tx, table: str, row: dict[str, Any]) -> None:
    """Insert the row, or replace an older version of it (never a newer one)."""
    columns = list(row)
    changes = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "code")
    tx.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
               f"({', '.join(['%s'] * len(columns))}) ON CONFLICT (code) DO UPDATE SET "
               f"{changes} WHERE {table}.version < excluded.version", tuple(row.values()))


class CrewsProjector(Handler):
    """Keeps `crews_view` and `materials_view` up to date with the notification log, and reads
    them. Without an `app` it only reads."""

    def __init__(self, app: Any, store: SqlStore | None = None, name: str = "crews",
                 **options: Any) -> None:
        self.app = app
        self.store = store or app.sql
        self.name = name
        create_missing(self.store, DDL)
        self.follower = (LogFollower(name, app, self, store=self.store, **options)
                         if app is not None else None)

    # ---- writing (the follower's handler) --------------------------------------------------------

    def handle(self, tx: Tx, notifications: Sequence[Any]) -> None:
        changed = dict.fromkeys(n.originator_id for n in notifications)  # in log order, once
        for originator_id in changed:
            aggregate = self.app.repository.get(originator_id)
            if isinstance(aggregate, Crew):
                upsert(tx, "crews_view", crew_row(aggregate))
            elif isinstance(aggregate, Material):
                upsert(tx, "materials_view", material_row(aggregate))

    # ---- reading ---------------------------------------------------------------------------------

    def crews(self, department: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE department = %s", (department,)) if department else ("", ())
        rows = self.store.run(f"SELECT {', '.join(CREW_COLUMNS)} FROM crews_view {where} "
                              "ORDER BY code", params)[0]
        return [crew_view(row) for row in rows]

    def crew(self, code: str) -> dict[str, Any] | None:
        rows = self.store.run(f"SELECT {', '.join(CREW_COLUMNS)} FROM crews_view "
                              "WHERE code = %s", (code,))[0]
        return crew_view(rows[0]) if rows else None

    def materials(self) -> list[dict[str, Any]]:
        rows = self.store.run(f"SELECT {', '.join(MATERIAL_COLUMNS)} FROM materials_view "
                              "ORDER BY code")[0]
        return [material_view(row) for row in rows]


def crew_view(row: Sequence[Any]) -> dict[str, Any]:
    data = dict(zip(CREW_COLUMNS, row, strict=True))
    members = json.loads(data.pop("members"))
    position = ({"lat": data["lat"], "long": data["long"], "at": data["position_at"]}
                if data["lat"] is not None else None)
    return {"code": data["code"], "name": data["name"], "department": data["department"],
            "availability": data["availability"], "on_shift": bool(data["on_shift"]),
            "members": [{"member_id": k, "name": v} for k, v in sorted(members.items())],
            "position": position, "version": data["version"]}


def view_of(aggregate: Crew | Material) -> dict[str, Any]:
    """A crew or material as its view row would show it, from the aggregate itself."""
    if isinstance(aggregate, Crew):
        row = crew_row(aggregate)
        return crew_view(tuple(row[c] for c in CREW_COLUMNS))
    row = material_row(aggregate)
    return material_view(tuple(row[c] for c in MATERIAL_COLUMNS))


def material_view(row: Sequence[Any]) -> dict[str, Any]:
    data = dict(zip(MATERIAL_COLUMNS, row, strict=True))
    return {**data, "prices": json.loads(data["prices"])}
