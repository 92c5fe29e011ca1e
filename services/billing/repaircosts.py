"""What each repair cost: the materials its crews logged, priced, per report; and the totals per
department, category (service code) and crew, folded from tracking's report events.

Tracking owns the report and crews prices each materials entry from its catalog when it is
logged; billing only adds up. The events come through the chassis' ordered consumer (each
report's events once, in stream-version order). Amounts are exact `Decimal` pesos kept as text
("925.00"), so SQLite and PostgreSQL hold the same thing, and every sum is made here in Python:
never a float, never a database's idea of adding text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.tables import create_missing
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import event_type

from . import money

CURRENCY = "MXN"
BY = {"department": "department", "service_code": "service_code", "crew": "crew_id"}

TABLES = {
    "repair_costs": "CREATE TABLE IF NOT EXISTS repair_costs (folio TEXT PRIMARY KEY,"
    " department TEXT NOT NULL, service_code TEXT NOT NULL, crew_id TEXT,"
    " total TEXT NOT NULL, lines INTEGER NOT NULL, unpriced INTEGER NOT NULL,"
    " opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL)",
    # A line is (report, the version of its materials_logged event, its place in the event's
    # items): an event applied twice can never add its lines twice.
    "repair_cost_lines": "CREATE TABLE IF NOT EXISTS repair_cost_lines (folio TEXT NOT NULL,"
    " version INTEGER NOT NULL, line INTEGER NOT NULL, code TEXT NOT NULL, description TEXT,"
    " unit TEXT, quantity TEXT NOT NULL, unit_cost TEXT, cost TEXT, crew_id TEXT,"
    " logged_at TEXT NOT NULL, PRIMARY KEY (folio, version, line))",
    "repair_cost_lines_logged":
        "CREATE INDEX IF NOT EXISTS repair_cost_lines_logged ON repair_cost_lines (logged_at)",
    "repair_costs_department":
        "CREATE INDEX IF NOT EXISTS repair_costs_department ON repair_costs (department)",
}
LINE_COLUMNS = ("version", "line", "code", "description", "unit", "quantity", "unit_cost",
                "cost", "crew_id", "logged_at")


class RepairNotCosted(LookupError):
    """A report billing has not heard of (yet)."""


class NotOpenedYet(LookupError):
    """A report event heard before the report's opening (the consumer retries, then parks it)."""


def prepare(store: SqlStore) -> None:
    """The repair costs' tables, made at start-up if missing."""
    create_missing(store, TABLES)


# ---- the fold ----------------------------------------------------------------------------------


def moment(value: datetime | str) -> str:
    """A time as stored and compared: UTC, fixed width, so text order is time order."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"a time needs its time zone, not {value!r}")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def quantity_of(value: Any) -> Decimal:
    """The quantity of a materials entry as the crew wrote it.

    It travels as a JSON number, i.e. a float here: 0.1 arrives as the binary double nearest
    0.1, and Decimal(0.1) would be 0.1000000000000000055511151231257827... — a wrong bill
    (1.005 × $1.00 would round to $1.00, not $1.01). str() of a float is its shortest repr:
    the shortest decimal that reads back as the same double, i.e. the decimal crews priced and
    sent as float(quantity) ("0.1"), for any quantity of up to 15 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise TypeError(f"a quantity is a number, not {value!r}")
    return money.exact(Decimal(str(value)), "a quantity")


def priced(item: Mapping[str, Any]) -> dict[str, Any]:
    """One materials entry with exact amounts: its own `cost` when the event states it, else
    quantity × unit cost to the centavo; no cost when crews gave no price."""
    quantity = quantity_of(item["quantity"])
    unit_cost = money.parse(item["unit_cost"]) if item.get("unit_cost") is not None else None
    if item.get("cost") is not None:
        cost: Decimal | None = money.parse(item["cost"])
    elif unit_cost is not None:
        with localcontext() as exact:
            exact.prec = 60  # the product is exact; cents() then rounds it once, half up
            product = quantity * unit_cost
        cost = money.cents(product)
    else:
        cost = None
    return {"code": item["code"], "description": item.get("description"),
            "unit": item.get("unit"), "quantity": quantity, "unit_cost": unit_cost,
            "cost": cost}


def text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def handle_opened(tx: Tx, folio: str, event: CloudEvent, data: Mapping[str, Any]) -> None:
    when = moment(event.time)
    tx.execute("INSERT INTO repair_costs (folio, department, service_code, crew_id, total, lines,"
               " unpriced, opened_at, updated_at, version) VALUES (%s, %s, %s, NULL, %s, 0, 0,"
               " %s, %s, %s) ON CONFLICT (folio) DO NOTHING",
               (folio, data["department"], data["service_code"], str(money.ZERO), when, when,
                int(data["version"])))


def handle_triaged(tx: Tx, folio: str, event: CloudEvent, data: Mapping[str, Any]) -> None:
    # The whole report's cost moves with it: a department pays for the reports it holds.
    tx.execute("UPDATE repair_costs SET department = %s, service_code = %s WHERE folio = %s",
               (data["department"], data["service_code"], folio))


def handle_assigned(tx: Tx, folio: str, event: CloudEvent, data: Mapping[str, Any]) -> None:
    tx.execute("UPDATE repair_costs SET crew_id = %s WHERE folio = %s", (data["crew_id"], folio))


def handle_reopened(tx: Tx, folio: str, event: CloudEvent, data: Mapping[str, Any]) -> None:
    tx.execute("UPDATE repair_costs SET crew_id = NULL WHERE folio = %s", (folio,))


def handle_materials_logged(tx: Tx, folio: str, event: CloudEvent,
                            data: Mapping[str, Any]) -> None:
    """The entries as lines, each charged to the crew that logged it (the report's assigned
    crew when a supervisor logged for it); then the report's total, added up again."""
    assigned = tx.execute("SELECT crew_id FROM repair_costs WHERE folio = %s",
                          (folio,)).fetchone()
    crew_id = (data.get("actor") or {}).get("crew_id") or (assigned[0] if assigned else None)
    logged_at = moment(data.get("occurred_at") or event.time)
    version = int(data["version"])
    rows = []
    for number, item in enumerate(data["items"]):
        line = priced(item)
        rows.append((folio, version, number, line["code"], line["description"], line["unit"],
                     f"{line['quantity']:f}", text(line["unit_cost"]), text(line["cost"]),
                     crew_id, logged_at))
    tx.executemany(f"INSERT INTO repair_cost_lines (folio, {', '.join(LINE_COLUMNS)}) VALUES "
                   f"({', '.join(['%s'] * (len(LINE_COLUMNS) + 1))}) "
                   "ON CONFLICT (folio, version, line) DO NOTHING", rows)
    costs = [cost for (cost,) in tx.execute(
        "SELECT cost FROM repair_cost_lines WHERE folio = %s", (folio,)).fetchall()]
    total = sum((Decimal(cost) for cost in costs if cost is not None), money.ZERO)
    tx.execute("UPDATE repair_costs SET total = %s, lines = %s, unpriced = %s WHERE folio = %s",
               (str(total), len(costs), sum(cost is None for cost in costs), folio))


Handler = Callable[[Tx, str, CloudEvent, Mapping[str, Any]], None]
HANDLERS: dict[str, Handler] = {
    event_type("opened"): handle_opened,
    event_type("triaged"): handle_triaged,
    event_type("assigned"): handle_assigned,
    event_type("reopened"): handle_reopened,
    event_type("materials_logged"): handle_materials_logged,
}


def apply(tx: Tx, event: CloudEvent) -> None:
    """One report event into the repair costs (the consumer's handler, in its transaction);
    other event types, and an event at or below the version already applied, change nothing."""
    handle = HANDLERS.get(event.type)
    if handle is None:
        return
    data = event.data or {}
    folio = str(event.subject or data["folio"])
    version = int(data["version"])
    known = tx.execute("SELECT version FROM repair_costs WHERE folio = %s", (folio,)).fetchone()
    if known is None and handle is not handle_opened:
        raise NotOpenedYet(f"{event.type} of {folio} before its opening")
    if known is not None and version <= int(known[0]):
        return  # already applied: a replay or a rebuild over what is there
    handle(tx, folio, event, data)
    tx.execute("UPDATE repair_costs SET version = %s, updated_at = %s WHERE folio = %s",
               (version, moment(event.time), folio))


# ---- reads -------------------------------------------------------------------------------------


def report_cost(store: SqlStore, folio: str) -> dict[str, Any]:
    """What a report's repair cost so far: its lines in the order they were logged, the total
    of those priced, and how many crews could not price. RepairNotCosted if unknown."""
    # One statement: the total and the lines come from the same snapshot.
    rows, _ = store.run(
        "SELECT r.department, r.service_code, r.crew_id, r.total, r.unpriced, "
        f"{', '.join(f'l.{column}' for column in LINE_COLUMNS)} FROM repair_costs r "
        "LEFT JOIN repair_cost_lines l ON l.folio = r.folio WHERE r.folio = %s "
        "ORDER BY l.version, l.line", (folio,))
    if not rows:
        raise RepairNotCosted(f"no report {folio} in the repair costs")
    department, service_code, crew_id, total, unpriced = rows[0][:5]
    lines = [line_of(row[5:]) for row in rows if row[5] is not None]
    return {"folio": folio, "department": department, "service_code": service_code,
            "crew_id": crew_id, "total": Decimal(total), "currency": CURRENCY,
            "lines": lines, "unpriced": int(unpriced)}


def line_of(row: Sequence[Any]) -> dict[str, Any]:
    line = dict(zip(LINE_COLUMNS, row, strict=True))
    amount = {name: None if line[name] is None else Decimal(line[name])
              for name in ("quantity", "unit_cost", "cost")}
    return {"code": line["code"], "description": line["description"], "unit": line["unit"],
            **amount, "crew_id": line["crew_id"], "logged_at": line["logged_at"],
            "version": int(line["version"])}


def totals(store: SqlStore, by: str, *, since: datetime | None = None,
           until: datetime | None = None, department: str | None = None
           ) -> list[dict[str, Any]]:
    """The repair costs per `by` ("department", "service_code" or "crew"), largest first:
    [{"key": "obras_publicas", "reports": 12, "total": Decimal("18250.40")}]. `reports` counts
    the reports with materials logged. With `since`/`until` (aware; since inclusive, until
    not) only the materials logged in that window count; with `department`, only its reports.
    A report counts for its department and category as they are now; a line for the crew that
    logged it (key None: no crew known)."""
    if by not in BY:
        raise ValueError(f"totals by {', '.join(BY)}, not {by!r}")
    where, params = [], []
    if department is not None:
        where.append("r.department = %s")
        params.append(department)
    if by != "crew" and since is None and until is None:
        # Each report's own total, kept as its lines came: one row per report.
        rows, _ = store.run(f"SELECT r.{BY[by]}, r.folio, r.total FROM repair_costs r WHERE "
                            f"{' AND '.join(['r.lines > 0', *where])}", params)
    else:
        for bound, when in ((">=", since), ("<", until)):
            if when is not None:
                where.append(f"l.logged_at {bound} %s")
                params.append(moment(when))
        key = "l.crew_id" if by == "crew" else f"r.{BY[by]}"
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows, _ = store.run(f"SELECT {key}, l.folio, l.cost FROM repair_cost_lines l JOIN "
                            f"repair_costs r ON r.folio = l.folio {clause}", params)
    return grouped(rows)


def grouped(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """(key, folio, amount or None) rows added up per key, exactly."""
    reports: dict[Any, set[str]] = {}
    sums: dict[Any, Decimal] = {}
    for key, folio, amount in rows:
        reports.setdefault(key, set()).add(folio)
        sums[key] = sums.get(key, money.ZERO) + (money.ZERO if amount is None
                                                 else Decimal(amount))
    found = [{"key": key, "reports": len(reports[key]), "total": sums[key]} for key in sums]
    return sorted(found, key=lambda row: (-row["total"], row["key"] is None, row["key"] or ""))
