"""Benchmark crews' field API on PostgreSQL, beside tracking's direct RPC field-step rate in the
same run: field steps through crews (HTTP -> crews -> RPC -> tracking, stored and published),
and a phone's offline queue of 50 updates synced at once. Prints figures; asserts nothing.

    make bench-crews     (or: .venv/bin/python -m bench.bench_crews --steps 2000)

Tracking and crews run as real `nameko run` processes on schemas of their own and a RabbitMQ
virtual host of their own. Load comes from green threads holding keep-alive HTTP connections.
"""

from __future__ import annotations

# isort: off
import eventlet

eventlet.monkey_patch()

import shared.chassis  # noqa: E402,F401  (before psycopg loads: green waits)
from shared.chassis.launcher import ServiceProcess, stop_all  # noqa: E402
# isort: on

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from bench.bench_intake import PG, Client, open_loop, rss_mb, sh  # noqa: E402
from bench.lean_rpc import LeanRpc  # noqa: E402
from shared.chassis.auth import mint_token  # noqa: E402

import psycopg  # noqa: E402  isort: skip

CITY = ZoneInfo("America/Mexico_City")
POTHOLE = {"service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
           "description": "Bache frente al mercado", "location": {"lat": 20.59, "long": -100.39},
           "channel": "phone_070"}
QUEUE_STEPS = ("dispatched", "en_route", "arrived", "materials", "work_completed")


def start(service: str, env: dict[str, str], port: int) -> ServiceProcess:
    return ServiceProcess(service, env, port=port, log=None).start().wait_healthy(60)


def bearer(role: str, **claims: str) -> str:
    return f"Bearer {mint_token('bench', (role,), ttl_seconds=3600, **claims)}"


def assigned_reports(amqp: str, count: int, window: int, crews: tuple[str, ...] = ("C-01",)
                     ) -> list[str]:
    """`count` reports opened by an operator and assigned by a supervisor to the crews in turn."""
    operator = LeanRpc(amqp, {"authorization": bearer("operator")})
    supervisor = LeanRpc(amqp, {"authorization": bearer("supervisor")})
    try:
        opened = operator.pipeline([("tracking", "open_report", (POTHOLE,))] * count, window)
        folios = [answer["folio"] for answer in opened]
        supervisor.pipeline([("tracking", "run_command", ("assign", f, {
            "crew_id": crews[n % len(crews)]})) for n, f in enumerate(folios)], window)
        return folios
    finally:
        operator.close()
        supervisor.close()


def direct_rate(amqp: str, folios: list[str], window: int) -> float:
    """Tracking's own field-step rate: the crew's dispatch_crew straight over RPC."""
    crew = LeanRpc(amqp, {"authorization": bearer("crew", crew_id="C-01")})
    try:
        started = time.perf_counter()
        crew.pipeline([("tracking", "run_command", ("dispatch_crew", f, {
            "step_id": str(uuid.uuid4())})) for f in folios], window)
        return len(folios) / (time.perf_counter() - started)
    finally:
        crew.close()


def through_crews_rate(client: Client, folios: list[str]) -> float:
    headers = {"Content-Type": "application/json", "Authorization": bearer("crew", crew_id="C-01")}

    def dispatch(folio: str) -> None:
        body = json.dumps({"step": "dispatched", "step_id": str(uuid.uuid4()),
                           "occurred_at": datetime.now(CITY).isoformat()}).encode()
        status, text = client.request("POST", f"/field/reports/{folio}/steps", body, headers)
        if status != 200:
            raise SystemExit(f"field step failed: {status} {text[:300]!r}")

    started = time.perf_counter()
    client.run(folios, dispatch)
    return len(folios) / (time.perf_counter() - started)


def published(tracking_port: int, seconds: float = 120) -> float:
    """Seconds until tracking's relay has published everything stored (its /readyz)."""
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with urllib.request.urlopen(f"http://127.0.0.1:{tracking_port}/readyz", timeout=5) as r:
            ready = json.loads(r.read())
        if not ready.get("relay_lag"):
            return time.monotonic() - started
        time.sleep(0.05)
    return float("nan")


def consumed(amqp: str, queue: str = "crews.consume_report_event", seconds: float = 120
             ) -> float:
    """Seconds until crews' work-list consumer has taken every report event off its queue, so
    the next timed slice does not pay for the previous slice's events."""
    import kombu

    started = time.monotonic()
    with kombu.Connection(amqp) as connection:
        channel = connection.channel()
        while time.monotonic() - started < seconds:
            if channel.queue_declare(queue, passive=True).message_count == 0:
                waited = time.monotonic() - started
                time.sleep(0.2)  # the last ones prefetched are being applied
                return waited
            time.sleep(0.05)
    return float("nan")


def queue_latencies(client: Client, folios: list[str], batches: int) -> list[float]:
    """Each batch: 10 reports x 5 steps, sent in reverse of the order they happened."""
    headers = {"Content-Type": "application/json", "Authorization": bearer("crew", crew_id="C-01")}
    latencies = []
    for batch in range(batches):
        now = datetime.now(CITY)
        updates = []
        for folio in folios[batch * 10:(batch + 1) * 10]:
            for n, step in enumerate(QUEUE_STEPS):
                update = {"folio": folio, "step": step, "step_id": str(uuid.uuid4()),
                          "occurred_at": (now + timedelta(seconds=n)).isoformat()}
                if step == "materials":
                    update["items"] = [{"code": "MEZ-ASF", "quantity": "0.5"}]
                updates.append(update)
        body = json.dumps({"updates": list(reversed(updates))}).encode()
        started = time.perf_counter()
        status, text = client.request("POST", "/field/sync", body, headers)
        latencies.append(time.perf_counter() - started)
        results = json.loads(text)["results"] if status == 200 else []
        if status != 200 or any(r["status"] != 200 for r in results):
            raise SystemExit(f"sync failed: {status} {text[:500]!r}")
    return sorted(latencies)


def my_jobs_latencies(client: Client, amqp: str, window: int, rate: float, seconds: float
                      ) -> tuple[list[float], float]:
    """20 crews with 10 open jobs each (their work lists filled from tracking's events over the
    bus); each member reads "my jobs" in turn at `rate` reads per second, open loop, for
    `seconds`. Returns the sorted latencies and the reads per second achieved."""
    codes = tuple(f"J-{n:02d}" for n in range(1, 21))
    admin = {"Content-Type": "application/json", "Authorization": bearer("admin")}
    for code in codes:
        body = {"code": code, "name": f"Cuadrilla {code}", "department": "obras_publicas"}
        status, text = client.request("POST", "/crews", json.dumps(body).encode(), admin)
        if status != 201:
            raise SystemExit(f"setting up failed: {status} {text[:300]!r}")
    assigned_reports(amqp, 10 * len(codes), window, codes)
    tokens = [{"Authorization": bearer("crew", crew_id=code)} for code in codes]
    deadline = time.monotonic() + 120
    while True:  # until the work lists hold every job (the consumer follows the bus)
        status, text = client.request("GET", "/field/jobs", None, tokens[-1])
        if status == 200 and len(json.loads(text)["jobs"]) == 10:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the work lists did not fill: {status} {text[:300]!r}")
        time.sleep(0.1)
    latencies: list[float] = []

    def read(n: int) -> None:
        started = time.perf_counter()
        status, text = client.request("GET", "/field/jobs", None, tokens[n % len(tokens)])
        latencies.append(time.perf_counter() - started)
        if status != 200 or len(json.loads(text)["jobs"]) != 10:
            raise SystemExit(f"my jobs failed: {status} {text[:300]!r}")

    achieved = open_loop(read, rate, seconds)
    return sorted(latencies), achieved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000, help="field steps each way")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the direct and crews paths take turns this many times")
    parser.add_argument("--window", type=int, default=64)
    # The same number of steps in flight on both paths: phones' connections to crews here,
    # the direct path's RPC window there.
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--read-rate", type=float, default=200.0, help="my-jobs reads per s")
    parser.add_argument("--read-seconds", type=float, default=15.0)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    vhost, tracking_schema, crews_schema = f"bench-{tag}", f"bench_trk_{tag}", f"bench_crw_{tag}"
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    sh("rabbitmqctl", "-q", "add_vhost", vhost)
    sh("rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    with psycopg.connect(**PG, autocommit=True) as conn:
        for schema in (tracking_schema, crews_schema):
            conn.execute(f"CREATE SCHEMA {schema}")
    env = {**os.environ, "PSYCOPG_WAIT_FUNC": "wait_select", "EXPEDIENTE_ENV": "development",
           "AMQP_URI": amqp, "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "POSTGRES_USER": PG["user"], "TRACKING_POSTGRES_DBNAME": PG["dbname"],
           "TRACKING_POSTGRES_SCHEMA": tracking_schema, "CREWS_POSTGRES_DBNAME": PG["dbname"],
           "CREWS_POSTGRES_SCHEMA": crews_schema, "TRACKING_HTTP_ADDRESS": "127.0.0.1:18201",
           "CREWS_HTTP_ADDRESS": "127.0.0.1:18202", "LOG_LEVEL": "WARNING"}
    processes: list[ServiceProcess] = []
    figures: dict[str, float] = {}
    try:
        processes.append(start("tracking", env, 18201))
        processes.append(start("crews", env, 18202))
        client = Client(18202, args.concurrency)
        admin = {"Content-Type": "application/json", "Authorization": bearer("admin")}
        for path, body in (("/crews", {"code": "C-01", "name": "Bacheo Centro",
                                       "department": "obras_publicas"}),
                           ("/materials", {"code": "MEZ-ASF", "description": "Mezcla asfáltica",
                                           "unit": "m3", "unit_cost": "1850.00",
                                           "effective_at": "2026-01-01T00:00:00-06:00"})):
            status, text = client.request("POST", path, json.dumps(body).encode(), admin)
            if status != 201:
                raise SystemExit(f"setting up failed: {status} {text[:300]!r}")
        folios = assigned_reports(amqp, 2 * args.steps + 10 * args.batches + 100, args.window)
        warm, direct, through = folios[:100], folios[100:100 + args.steps], folios[
            100 + args.steps:100 + 2 * args.steps]
        through_crews_rate(client, warm)  # warm up both paths
        # The two paths take turns, a slice each per round, so a drift of this shared machine
        # during the run (another VM's load, the database's checkpoints) falls on both alike;
        # between slices tracking's relay and crews' consumer finish what the last slice left,
        # so neither path is timed doing the other's work.
        size = -(-args.steps // args.rounds)
        direct_s = through_s = drained = listed = 0.0
        for first in range(0, args.steps, size):
            part = direct[first:first + size]
            direct_s += len(part) / direct_rate(amqp, part, args.window)
            published(18201)
            consumed(amqp)
            part = through[first:first + size]
            through_s += len(part) / through_crews_rate(client, part)
            drained += published(18201)
            listed += consumed(amqp)
        figures["direct_rpc_field_step_per_s"] = args.steps / direct_s
        figures["crews_field_step_per_s"] = args.steps / through_s
        figures["crews_field_step_published_per_s"] = args.steps / (through_s + drained)
        # ... and until crews' work lists show them (its consumer of the report events)
        figures["crews_field_step_in_work_lists_per_s"] = args.steps / (through_s + drained
                                                                        + listed)
        figures["crews_vs_direct_ratio"] = (figures["crews_field_step_per_s"]
                                            / figures["direct_rpc_field_step_per_s"])
        latencies = queue_latencies(client, folios[100 + 2 * args.steps:], args.batches)
        figures["sync_50_updates_p50_ms"] = latencies[len(latencies) // 2] * 1000
        figures["sync_50_updates_max_ms"] = latencies[-1] * 1000
        reads, achieved = my_jobs_latencies(client, amqp, args.window, args.read_rate,
                                            args.read_seconds)
        figures["my_jobs_reads_per_s"] = achieved
        figures["my_jobs_p50_ms"] = reads[len(reads) // 2] * 1000
        figures["my_jobs_p99_ms"] = reads[int(len(reads) * 0.99)] * 1000
        figures["my_jobs_max_ms"] = reads[-1] * 1000
        figures["crews_peak_rss_mb"] = rss_mb(processes[1].process.pid)
        figures["tracking_peak_rss_mb"] = rss_mb(processes[0].process.pid)
    finally:
        stop_all(processes)
        with psycopg.connect(**PG, autocommit=True) as conn:
            for schema in (tracking_schema, crews_schema):
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        sh("rabbitmqctl", "-q", "delete_vhost", vhost)
    for name, value in figures.items():
        print(f"{name:<40} {value:10.2f}")


if __name__ == "__main__":
    main()
