"""Work lists: a row per report, folded from tracking's report events, giving each crew its jobs
and each supervisor their department's.

Tracking owns the report; crews only follows it. The events come from the bus through the
chassis' ordered, idempotent consumer (shared/chassis/consumer.py): each report's events are
applied once, in stream-version order, a gap fetched from tracking first. `evolve` is the one
fold, used by the consumer and by a rebuild from the events alike, and it reads the step a report
is in from the lifecycle on the wire (shared/contracts/lifecycle.py), never from a copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import short_name
from shared.contracts.lifecycle import FIRST_STEP, STATUS, rule, step_after

# The field's name for a step: tracking's command for it and the event that command records.
FIELD_STEPS = {"dispatched": ("dispatch_crew", "crew_dispatched"),
               "en_route": ("set_en_route", "crew_en_route"),
               "arrived": ("arrive", "crew_arrived"),
               "materials": ("log_materials", "materials_logged"),
               "work_completed": ("complete_work", "work_completed")}
FIELD_EVENTS = {step: event for step, (_command, event) in FIELD_STEPS.items()}

DDL = {
    "work_jobs": "CREATE TABLE IF NOT EXISTS work_jobs (folio TEXT PRIMARY KEY,"
    " crew_id TEXT, department TEXT NOT NULL, service_code TEXT NOT NULL,"
    " service_name TEXT NOT NULL, description TEXT NOT NULL, lat DOUBLE PRECISION,"
    " long DOUBLE PRECISION, address TEXT, photos TEXT NOT NULL, due_at TEXT, priority TEXT,"
    " step TEXT NOT NULL, status TEXT NOT NULL, opened_at TEXT NOT NULL, assigned_at TEXT,"
    " dispatched_at TEXT, arrived_at TEXT, completed_at TEXT, updated_at TEXT NOT NULL,"
    " version INTEGER NOT NULL)",
    "work_jobs_crew": "CREATE INDEX IF NOT EXISTS work_jobs_crew ON work_jobs (crew_id, status)",
    "work_jobs_department":
        "CREATE INDEX IF NOT EXISTS work_jobs_department ON work_jobs (department, status)",
}
COLUMNS = ("folio", "crew_id", "department", "service_code", "service_name", "description",
           "lat", "long", "address", "photos", "due_at", "priority", "step", "status",
           "opened_at", "assigned_at", "dispatched_at", "arrived_at", "completed_at",
           "updated_at", "version")

# Each field step tracking recorded, counted once (here, as the consumer applies its event: a
# phone's retry of the same step_id records nothing and is not counted again), by who recorded
# it: the crew itself from the street (`field`) or a supervisor for the crew (`supervisor`).
STEP_OF_EVENT = {event: step for step, event in FIELD_EVENTS.items()} | {"photo_added": "photo"}
STEPS = Counter("expediente_field_steps_total",
                "Field steps recorded (counted once, from the report events)",
                ["step", "origin", "department"])
MINUTES = (60, 300, 600, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400)
DISPATCH_TO_ARRIVAL = Histogram("expediente_crew_dispatch_to_arrival_seconds",
                                "From the crew setting out to its arrival on site",
                                ["department"], buckets=MINUTES)
ARRIVAL_TO_COMPLETED = Histogram("expediente_crew_arrival_to_completed_seconds",
                                 "From the crew's arrival on site to the work completed",
                                 ["department"], buckets=MINUTES)
LAG = Histogram("expediente_worklist_lag_seconds",
                "From a report event's time to its landing in the work lists",
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600))


class JobNotFound(LookupError):
    """A report the work lists do not hold (yet)."""


def next_steps(step: str) -> list[str]:
    """The field steps a report in `step` may record next, as the lifecycle allows them."""
    return [field for field, name in FIELD_EVENTS.items() if step in rule(name).allowed_in]


def _when(event: CloudEvent, data: Mapping[str, Any]) -> str:
    """When a step happened: the device's time for a field step, else the event's."""
    return str(data.get("occurred_at") or event.time.isoformat())


def evolve(row: dict[str, Any] | None, event: CloudEvent) -> dict[str, Any] | None:
    """The job after one report event (None before `opened`, as nothing is known yet)."""
    name, data = short_name(event.type), event.data or {}
    if name == "opened":
        where = data.get("location") or {}
        return {"folio": data["folio"], "crew_id": None, "department": data["department"],
                "service_code": data["service_code"], "service_name": data["service_name"],
                "description": data["description"], "lat": where.get("lat"),
                "long": where.get("long"), "address": where.get("address"),
                "photos": list(data.get("media_urls") or []), "due_at": data.get("due_at"),
                "priority": None, "step": FIRST_STEP, "status": STATUS[FIRST_STEP],
                "opened_at": event.time.isoformat(), "assigned_at": None, "dispatched_at": None,
                "arrived_at": None, "completed_at": None, "updated_at": event.time.isoformat(),
                "version": int(data["version"])}
    if row is None:
        return None
    row = {**row, "photos": list(row["photos"])}
    step = step_after(row["step"], name)
    row.update(step=step, status=STATUS[step], version=int(data["version"]),
               updated_at=event.time.isoformat())
    if name == "triaged":
        if data["service_code"] != row["service_code"]:
            row["service_name"] = data["service_code"]
        row.update(department=data["department"], service_code=data["service_code"],
                   priority=data["priority"])
    elif name == "assigned":
        row.update(crew_id=data["crew_id"], assigned_at=event.time.isoformat(),
                   dispatched_at=None, arrived_at=None, completed_at=None)
    elif name == "reopened":
        row.update(crew_id=None, dispatched_at=None, arrived_at=None, completed_at=None)
    elif name == "crew_dispatched":
        row["dispatched_at"] = _when(event, data)
    elif name == "crew_arrived":
        row["arrived_at"] = _when(event, data)
    elif name == "work_completed":
        row["completed_at"] = _when(event, data)
    elif name == "photo_added" and data.get("url"):
        row["photos"].append(data["url"])
    return row


def rebuild(events: Iterable[CloudEvent]) -> dict[str, dict[str, Any]]:
    """Every report's job folded from its events, from scratch (what the table must equal)."""
    jobs: dict[str, dict[str, Any]] = {}
    for event in events:
        folio = str(event.subject)
        folded = evolve(jobs.get(folio), event)
        if folded is not None:
            jobs[folio] = folded
    return jobs


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def observe(before: dict[str, Any] | None, after: dict[str, Any], event: CloudEvent) -> None:
    """The field's steps and durations and the projection's lag, for the event just applied."""
    department = after["department"]
    step = STEP_OF_EVENT.get(short_name(event.type))
    if step is not None:
        role = ((event.data or {}).get("actor") or {}).get("role")
        STEPS.labels(step, "field" if role == "crew" else "supervisor", department).inc()
    if after["arrived_at"] and not (before or {}).get("arrived_at"):
        took = _seconds_between(after["dispatched_at"], after["arrived_at"])
        if took is not None and took >= 0:
            DISPATCH_TO_ARRIVAL.labels(department).observe(took)
    if after["completed_at"] and not (before or {}).get("completed_at"):
        took = _seconds_between(after["arrived_at"], after["completed_at"])
        if took is not None and took >= 0:
            ARRIVAL_TO_COMPLETED.labels(department).observe(took)
    LAG.observe(max(0.0, (datetime.now(UTC) - event.time).total_seconds()))


# ---- the table ---------------------------------------------------------------------------------


def prepare(store: SqlStore) -> None:
    create_missing(store, DDL)


def load(tx: Tx, folios: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The jobs of these reports the table holds, by folio: one statement."""
    rows = tx.execute(f"SELECT {', '.join(COLUMNS)} FROM work_jobs WHERE folio IN "
                      f"({', '.join(['%s'] * len(folios))})", folios).fetchall()
    return {job["folio"]: job for job in map(from_row, rows)}


def save(tx: Tx, jobs: Sequence[dict[str, Any]]) -> None:
    """Write these jobs (one per folio): one statement."""
    if not jobs:
        return
    changes = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "folio")
    row = f"({', '.join(['%s'] * len(COLUMNS))})"
    tx.execute(f"INSERT INTO work_jobs ({', '.join(COLUMNS)}) VALUES "
               f"{', '.join([row] * len(jobs))} ON CONFLICT (folio) DO UPDATE SET {changes}",
               [json.dumps(job[c], ensure_ascii=False) if c == "photos" else job[c]
                for job in jobs for c in COLUMNS])


def from_row(row: Sequence[Any]) -> dict[str, Any]:
    job = dict(zip(COLUMNS, row, strict=True))
    job["photos"] = json.loads(job["photos"])
    return job


def apply(tx: Tx, events: Sequence[CloudEvent]) -> None:
    """Report events into the work lists (the consumer's handler, in its transaction; each
    report's events in version order): the rows read in one statement, folded, written in one.
    The metrics count them once the transaction has committed."""
    jobs = load(tx, list(dict.fromkeys(str(event.subject) for event in events)))
    changed: dict[str, dict[str, Any]] = {}
    applied = []
    for event in events:
        folio = str(event.subject)
        before = jobs.get(folio)
        after = evolve(before, event)
        if after is None:
            continue  # an event of a report whose opening never reached crews: nothing to show
        jobs[folio] = changed[folio] = after
        applied.append((before, after, event))
    save(tx, list(changed.values()))

    def count() -> None:
        for before, after, event in applied:
            observe(before, after, event)

    tx.after_commit(count)


def jobs(store: SqlStore, *, crew_id: str | None = None, department: str | None = None,
         open_only: bool = True) -> list[dict[str, Any]]:
    """The jobs of a crew or a department, the most urgent first (due soonest, then oldest)."""
    where, params = [], []
    if crew_id is not None:
        where.append("crew_id = %s")
        params.append(crew_id)
    if department is not None:
        where.append("department = %s")
        params.append(department)
    if open_only:
        where.append("status = 'open'")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows, _ = store.run(f"SELECT {', '.join(COLUMNS)} FROM work_jobs {clause} "
                        "ORDER BY due_at IS NULL, due_at, opened_at, folio LIMIT 500", params)
    return [from_row(row) for row in rows]


def job(store: SqlStore, folio: str) -> dict[str, Any] | None:
    rows, _ = store.run(f"SELECT {', '.join(COLUMNS)} FROM work_jobs WHERE folio = %s", (folio,))
    return from_row(rows[0]) if rows else None


def workload(store: SqlStore, department: str) -> dict[str, int]:
    """Open jobs per crew of a department."""
    rows, _ = store.run("SELECT crew_id, COUNT(*) FROM work_jobs WHERE department = %s AND "
                        "status = 'open' AND crew_id IS NOT NULL GROUP BY crew_id", (department,))
    return {str(code): int(count) for code, count in rows}


def shown(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the field app and the supervisor read it."""
    return {"folio": job["folio"], "step": job["step"], "status": job["status"],
            "next_steps": next_steps(job["step"]), "crew_id": job["crew_id"],
            "service_code": job["service_code"], "service_name": job["service_name"],
            "department": job["department"], "description": job["description"],
            "location": {"lat": job["lat"], "long": job["long"], "address": job["address"]},
            "photos": job["photos"], "due_at": job["due_at"], "priority": job["priority"],
            "opened_at": job["opened_at"], "assigned_at": job["assigned_at"],
            "updated_at": job["updated_at"], "version": job["version"]}
