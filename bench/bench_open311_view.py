"""Benchmark tracking's Open311 view on PostgreSQL with 100,000 seeded reports; prints figures.

    .venv/bin/python -m bench.bench_open311_view [--reports 100000] [--days 365] [--explain]
"""

from __future__ import annotations

# isort: off
import shared.chassis  # noqa: F401  (before psycopg loads: green waits, as the service runs)
# isort: on

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import psycopg  # noqa: E402

from services.tracking.read.projection import ReportProjector  # noqa: E402
from services.tracking.read.rows import COLUMNS, INDEXES  # noqa: E402
from services.tracking.read.timeline import RESOLUTION_LABELS, iso, to_json  # noqa: E402
from shared.chassis.sqlstore import SqlStore  # noqa: E402

PG = {"dbname": "test", "host": "127.0.0.1", "port": 5432, "user": "postgres"}
SERVICES = [  # code, name, department, share of the reports
    ("bache", "Bache", "obras", 30), ("luminaria", "Luminaria apagada", "alumbrado", 20),
    ("basura", "Basura no recolectada", "limpia", 15), ("fuga", "Fuga de agua", "agua", 12),
    ("arbol", "Árbol caído", "parques", 6), ("semaforo", "Semáforo descompuesto", "movilidad", 5),
    ("drenaje", "Drenaje tapado", "agua", 5), ("grafiti", "Grafiti", "imagen", 4),
    ("banqueta", "Banqueta rota", "obras", 2), ("animal", "Animal muerto", "limpia", 1),
]
CITY = (20.50, -100.50, 20.75, -100.30)  # Querétaro, roughly
FIELD_STEPS = ("triaged", "assigned", "crew_dispatched", "crew_en_route", "crew_arrived",
               "photo_added", "materials_logged", "work_completed")
STEP_OF = {"triaged": "triaged", "assigned": "assigned", "crew_dispatched": "dispatched",
           "crew_en_route": "en_route", "crew_arrived": "on_site", "photo_added": "on_site",
           "materials_logged": "on_site", "work_completed": "work_completed"}


def env(schema: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": PG["dbname"],
            "POSTGRES_HOST": PG["host"], "POSTGRES_PORT": str(PG["port"]),
            "POSTGRES_USER": PG["user"], "POSTGRES_SCHEMA": schema}


def entry(kind: str, version: int, at: datetime, **fields: object) -> dict:
    actor = {"id": f"persona-{version}", "role": "crew", "channel": "field", "crew_id": "C-07"}
    return {"type": kind, "version": version, "at": iso(at), "recorded_at": iso(at),
            "actor": actor, **fields}


def report_row(n: int, now: datetime, days: int, rng: random.Random) -> tuple:
    """One report's view row, as far as its life got by `now` (older ones mostly closed)."""
    code, name, department, _ = rng.choices(SERVICES, [s[3] for s in SERVICES])[0]
    opened = now - timedelta(seconds=rng.uniform(0, days * 86400))
    closes = rng.random() < 0.95
    lat, long = rng.uniform(CITY[0], CITY[2]), rng.uniform(CITY[1], CITY[3])
    at, timeline, photos, step = opened, [entry("opened", 1, opened, channel="app")], [], "opened"
    for kind in (*FIELD_STEPS, *(("closed",) if closes else ())):
        gap = timedelta(minutes=rng.uniform(5, 600))
        if at + gap > now:
            break  # a young report waits for its next step
        at += gap
        extra: dict[str, object] = {}
        if kind == "photo_added":
            extra = {"url": f"https://fotos.example/{n}.jpg", "caption": "Después",
                     "stage": "after"}
            photos.append({**extra, "at": iso(at)})
        elif kind == "closed":
            extra = {"resolution": "fixed", "notes": "Sin novedad",
                     "resolution_label": RESOLUTION_LABELS["fixed"]}
        timeline.append(entry(kind, len(timeline) + 1, at, **extra))
        step = STEP_OF.get(kind, "closed")
    closed = step == "closed"
    values = {
        "folio": f"QRO-{opened.year}-{n:06d}", "report_id": str(uuid.uuid4()),
        "service_code": code, "service_name": name, "status": "closed" if closed else "open",
        "step": step, "department": department, "crew_id": "C-07" if len(timeline) > 2 else None,
        "channel": "app", "priority": "normal", "resolution": "fixed" if closed else None,
        "duplicate_of": None, "citizen_feedback": None, "opened_at": iso(opened),
        "updated_at": iso(at), "closed_at": iso(at) if closed else None,
        "due_at": iso(opened + timedelta(hours=72)), "lat": lat, "long": long,
        "address": f"Calle {n % 500} número {n % 97}", "description": f"{name} cerca del {n}",
        "version": len(timeline), "location": to_json({"lat": lat, "long": long}),
        "attributes": "{}", "media_urls": to_json([f"https://fotos.example/c{n}.jpg"]
                                                  if rng.random() < 0.3 else []),
        "timeline": to_json(timeline), "photos": to_json(photos), "materials": "[]",
    }
    return tuple(values[c] for c in COLUMNS)


def seed(store: SqlStore, reports: int, days: int, now: datetime) -> float:
    """COPY the rows in (no events: a rebuild's shape, not its path), then build the indexes."""
    started, rng = time.perf_counter(), random.Random(311)
    with store.transaction() as tx:
        for index in INDEXES:
            tx.execute(f"DROP INDEX IF EXISTS {index}")
    copying = f"COPY report_views ({', '.join(COLUMNS)}) FROM STDIN"
    with store.connect() as conn, conn.cursor() as cursor, cursor.copy(copying) as copy:
        for n in range(1, reports + 1):
            copy.write_row(report_row(n, now, days, rng))
    with store.transaction() as tx:
        for index, columns in INDEXES.items():
            tx.execute(f"CREATE INDEX IF NOT EXISTS {index} ON report_views ({columns})")
        tx.execute("ANALYZE report_views")
    return time.perf_counter() - started


def filter_kinds(now: datetime, rng: random.Random) -> dict[str, Callable[[], dict]]:
    window = now - timedelta(days=90)
    codes = [s[0] for s in SERVICES]

    def bbox(size: float) -> tuple[float, ...]:
        lat, long = rng.uniform(CITY[0], CITY[2] - size), rng.uniform(CITY[1], CITY[3] - size)
        return (lat, long, lat + size, long + size)

    return {
        "default 90 days": lambda: {"opened_from": window},
        "service_code": lambda: {"opened_from": window, "service_codes": [rng.choice(codes)]},
        "service_code list": lambda: {"opened_from": window,
                                      "service_codes": rng.sample(codes, 3)},
        "status open": lambda: {"opened_from": window, "status": "open"},
        "status closed": lambda: {"opened_from": window, "status": "closed"},
        "bbox ~2 km": lambda: {"opened_from": window, "bbox": bbox(0.02)},
        "combined": lambda: {"opened_from": window, "service_codes": [rng.choice(codes[:4])],
                             "status": rng.choice(("open", "closed")), "bbox": bbox(0.05)},
        "page 5 (offset 200)": lambda: {"opened_from": window, "offset": 200},
        "folios (10)": lambda: {"folios": [f"QRO-{now.year}-{rng.randint(1, 99_999):06d}"
                                           for _ in range(10)]},
    }


def explain(store: SqlStore, projector: ReportProjector, filters: dict) -> str:
    """EXPLAIN ANALYZE of the very query open311_requests sends for these filters."""
    captured: list[tuple[str, list]] = []
    real_transaction = store.transaction

    class Spy:
        def __init__(self, tx):
            self.tx = tx

        def execute(self, sql, params=()):
            captured.append((sql, list(params)))
            return self.tx.execute(sql, params)

    @contextmanager
    def spying():
        with real_transaction() as tx:
            yield Spy(tx)

    store.transaction = spying  # type: ignore[method-assign]
    try:
        projector.open311_requests(**filters)
    finally:
        store.transaction = real_transaction  # type: ignore[method-assign]
    sql, params = captured[-1]
    with real_transaction() as tx:
        plan = tx.execute("EXPLAIN (ANALYZE, BUFFERS OFF) " + sql, params).fetchall()
    return "\n".join("    " + line for (line,) in plan)


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {cuts[49]:6.2f} ms   p99 {cuts[98]:6.2f} ms   max {max(samples):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365, help="days the reports span")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--explain", action="store_true", help="print each kind's query plan")
    args = parser.parse_args()
    schema, now = f"bench_open311_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = SqlStore.from_env(env(schema))
    try:
        projector = ReportProjector(app=None, store=store)
        seconds = seed(store, args.reports, args.days, now)
        print(f"seeded {args.reports} reports over {args.days} days in {seconds:.1f} s")
        rng = random.Random(2026)
        kinds = filter_kinds(now, rng)
        for _ in range(20):  # warm the pool and the caches
            projector.open311_requests(**kinds["default 90 days"]())
        timings: dict[str, list[float]] = {kind: [] for kind in kinds}
        rows: dict[str, int] = dict.fromkeys(kinds, 0)
        names = list(kinds)
        for call in range(args.calls):
            kind = names[call % len(names)]
            filters = kinds[kind]()
            started = time.perf_counter()
            rows[kind] += len(projector.open311_requests(**filters))
            timings[kind].append((time.perf_counter() - started) * 1000)
        print(f"open311_requests, {args.calls} calls (limit 50, opened_at desc):")
        for kind, samples in timings.items():
            print(f"  {kind:22} {percentiles(samples)}   "
                  f"{rows[kind] / len(samples):5.1f} rows/call")
            if args.explain:
                print(explain(store, projector, kinds[kind]()))
        print("open311_updates (limit 100):")
        for label, back in (("since 1 h", timedelta(hours=1)), ("since 1 day", timedelta(days=1)),
                            ("since 90 days", timedelta(days=90))):
            samples = []
            for _ in range(50):
                started = time.perf_counter()
                projector.open311_updates(now - back, limit=100)
                samples.append((time.perf_counter() - started) * 1000)
            print(f"  {label:22} {percentiles(samples)}")
    finally:
        store.close()
        with psycopg.connect(**PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
