"""Benchmark intake on PostgreSQL: Open311 `POST requests.json` end to end (folio returned, report
stored in tracking), the app API's POST, and `GET requests.json` with filters over 100,000
reports. Prints figures; asserts nothing.

    make bench-intake     (or: .venv/bin/python -m bench.bench_intake --posts 3000)

Tracking and intake run as real `nameko run` processes on schemas of their own and a RabbitMQ
virtual host of their own. Load comes from green threads holding keep-alive HTTP connections.
"""

from __future__ import annotations

# isort: off
import eventlet
import eventlet.queue

eventlet.monkey_patch()

import shared.chassis  # noqa: E402,F401  (before psycopg loads: green waits)
from shared.chassis.launcher import ServiceProcess, stop_all  # noqa: E402
# isort: on

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The services it starts use config.yaml's development secrets (the Open311 demo key, say).
os.environ["EXPEDIENTE_ENV"] = "development"
PG = dict(dbname=os.environ.get("BENCH_PG_DBNAME", "test"), host="127.0.0.1", port=5432,
          user=os.environ.get("BENCH_PG_USER", "postgres"))
API_KEY = "expediente-demo-key"
CODES = ["bache", "alumbrado_publico", "recoleccion_basura", "fuga_agua", "poda_arbol",
         "semaforo", "banqueta_danada", "grafiti", "animal_muerto", "otro"]
POTHOLE_FORM = {"api_key": API_KEY, "service_code": "bache", "lat": "20.5931",
                "long": "-100.392", "description": "Bache frente a la escuela",
                "attribute[tamano]": "grande"}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def start(service: str, env: dict[str, str], port: int) -> ServiceProcess:
    return ServiceProcess(service, env, port=port, log=None).start().wait_healthy(60)


class Client:
    """`concurrency` keep-alive HTTP connections, each used by one request at a time."""

    def __init__(self, port: int, concurrency: int) -> None:
        self.port = port
        self.pool = eventlet.GreenPool(concurrency)
        self.idle: eventlet.queue.LightQueue = eventlet.queue.LightQueue()
        for _ in range(concurrency):
            self.idle.put(http.client.HTTPConnection("127.0.0.1", port, timeout=60))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = self.idle.get()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            self.idle.put(connection)

    def run(self, calls: list, func) -> list:
        return list(self.pool.imap(func, calls))


def open_loop(call: Callable[[int], None], rate: float, seconds: float) -> float:
    """`call(n)` started `rate` times a second for `seconds`, whether or not earlier calls have
    answered (open loop: a slow answer does not slow the load); returns the rate achieved."""
    pool = eventlet.GreenPool(1000)
    total = int(rate * seconds)
    began = time.perf_counter()
    for n in range(total):
        wait = began + n / rate - time.perf_counter()
        if wait > 0:
            eventlet.sleep(wait)
        pool.spawn_n(call, n)
    pool.waitall()
    return total / (time.perf_counter() - began)


def post_rate(client: Client, count: int) -> tuple[float, list[str]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(i: int) -> str:
        form = {**POTHOLE_FORM, "description": f"Bache número {i}"}
        status, body = client.request("POST", "/open311/v2/requests.json",
                                      urllib.parse.urlencode(form).encode(), headers)
        if status not in (200, 201):
            raise SystemExit(f"POST failed: {status} {body[:300]!r}")
        return json.loads(body)[0]["service_request_id"]

    client.run(range(20), post)  # warm up
    started = time.perf_counter()
    folios = client.run(range(count), post)
    return count / (time.perf_counter() - started), folios


def app_rate(client: Client, count: int) -> float:
    def post(i: int) -> None:
        body = json.dumps({"service_code": "bache", "description": f"Bache {i}",
                           "location": {"lat": 20.5931, "long": -100.392},
                           "answers": {"tamano": "grande"}}).encode()
        status, text = client.request("POST", "/api/v1/reports", body, {
            "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
        if status != 201:
            raise SystemExit(f"app POST failed: {status} {text[:300]!r}")

    started = time.perf_counter()
    client.run(range(count), post)
    return count / (time.perf_counter() - started)


def seed_reports(schema: str, count: int) -> None:
    """`count` reports straight into tracking's read model, spread over the last 180 days."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    with psycopg.connect(**PG, autocommit=False) as conn:
        columns = [row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND "
            "table_name = 'report_views' ORDER BY ordinal_position", (schema,))]
        with conn.cursor().copy(f"COPY {schema}.report_views ({', '.join(columns)}) "
                                "FROM STDIN") as copy:
            for i in range(count):
                opened = now - timedelta(seconds=rng.uniform(0, 180 * 86400))
                closed = rng.random() < 0.6
                entry = {"type": "opened", "at": opened.isoformat(),
                         "actor": {"id": "bench", "role": "system", "channel": "open311"}}
                values = {
                    "folio": f"BEN-2026-{i:06d}", "report_id": str(uuid.uuid4()),
                    "service_code": rng.choice(CODES), "service_name": "Servicio",
                    "status": "closed" if closed else "open",
                    "step": "closed" if closed else rng.choice(["opened", "assigned",
                                                                 "crew_arrived"]),
                    "department": "obras_publicas", "crew_id": None, "channel": "open311",
                    "priority": None, "resolution": "fixed" if closed else None,
                    "duplicate_of": None, "citizen_feedback": None,
                    "opened_at": opened.isoformat(),
                    "updated_at": (opened + timedelta(hours=5)).isoformat(),
                    "closed_at": (opened + timedelta(hours=30)).isoformat() if closed else None,
                    "due_at": (opened + timedelta(hours=72)).isoformat(),
                    "lat": 20.55 + rng.random() * 0.1, "long": -100.45 + rng.random() * 0.1,
                    "address": None, "description": f"Reporte de prueba {i}", "version": 1,
                    "location": "{}", "attributes": "{}", "media_urls": "[]",
                    "timeline": json.dumps([entry]), "photos": "[]", "materials": "[]",
                }
                copy.write_row([values.get(c) for c in columns])
        conn.commit()
        conn.execute(f"ANALYZE {schema}.report_views")
        conn.commit()


def get_latency(client: Client, calls: int) -> dict[str, tuple[float, float]]:
    now = datetime.now(UTC)
    kinds = {
        "default": lambda: {},
        "service_code": lambda: {"service_code": random.choice(CODES)},
        "status_open": lambda: {"status": "open"},
        "window_30d": lambda: {"start_date": (now - timedelta(days=60)).isoformat(),
                               "end_date": (now - timedelta(days=30)).isoformat()},
        "combined": lambda: {"service_code": f"{random.choice(CODES)},{random.choice(CODES)}",
                             "status": "open",
                             "start_date": (now - timedelta(days=80)).isoformat()},
    }
    figures = {}
    for name, params in kinds.items():
        times: list[float] = []

        def get(_: int, params=params, times=times) -> None:
            query = urllib.parse.urlencode(params())
            started = time.perf_counter()
            status, body = client.request("GET", f"/open311/v2/requests.json?{query}")
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"GET failed: {status} {body[:300]!r}")

        client.run(range(20), get)
        times.clear()
        client.run(range(calls), get)
        times.sort()
        figures[name] = (times[len(times) // 2], times[int(len(times) * 0.99) - 1])
    return figures


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--gets", type=int, default=300,
                        help="per filter kind, sequentially (c1) and 4 at a time (c4)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    vhost, tracking_schema, intake_schema = f"bench-{tag}", f"bench_trk_{tag}", f"bench_int_{tag}"
    sh("rabbitmqctl", "-q", "add_vhost", vhost)
    sh("rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    with psycopg.connect(**PG, autocommit=True) as conn:
        for schema in (tracking_schema, intake_schema):
            conn.execute(f"CREATE SCHEMA {schema}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PSYCOPG_WAIT_FUNC": "wait_select",
           "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
           "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_USER": PG["user"],
           "TRACKING_POSTGRES_DBNAME": PG["dbname"], "TRACKING_POSTGRES_SCHEMA": tracking_schema,
           "INTAKE_POSTGRES_DBNAME": PG["dbname"], "INTAKE_POSTGRES_SCHEMA": intake_schema,
           "TRACKING_HTTP_ADDRESS": "127.0.0.1:18101", "INTAKE_HTTP_ADDRESS": "127.0.0.1:18100",
           "LOG_LEVEL": "WARNING"}
    processes = []
    figures: dict[str, float] = {}
    try:
        processes.append(start("tracking", env, 18101))
        processes.append(start("intake", env, 18100))
        client = Client(18100, args.concurrency)
        rate, folios = post_rate(client, args.posts)
        figures["open311_post_per_s"] = rate
        with psycopg.connect(**PG) as conn:
            stored = conn.execute(
                f"SELECT count(*) FROM {tracking_schema}.tracking_events WHERE originator_version"
                " = 1").fetchone()[0]
        figures["open311_posts"] = len(folios)
        figures["reports_stored_in_tracking"] = stored
        figures["app_post_per_s"] = app_rate(client, args.posts // 2)
        figures["intake_peak_rss_mb"] = rss_mb(processes[1].process.pid)
        figures["tracking_peak_rss_mb"] = rss_mb(processes[0].process.pid)
        seed_reports(tracking_schema, args.seed)
        figures["seeded_reports"] = args.seed
        for concurrency in (1, 4):
            reader = Client(18100, concurrency)
            for name, (p50, p99) in get_latency(reader, args.gets).items():
                figures[f"get_{name}_c{concurrency}_p50_ms"] = p50
                figures[f"get_{name}_c{concurrency}_p99_ms"] = p99
    finally:
        stop_all(processes)
        with psycopg.connect(**PG, autocommit=True) as conn:
            for schema in (tracking_schema, intake_schema):
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    for name, value in figures.items():
        print(f"{name:<40} {value:10.1f}")


if __name__ == "__main__":
    main()
