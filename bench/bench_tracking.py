"""Benchmark tracking on PostgreSQL: RPC and HTTP throughput, raw append rate, save→publish
latency, projection rebuild rate and memory. Prints figures; asserts nothing.

    make bench            (or: .venv/bin/python -m bench.bench_tracking --reports 4000)

Load comes from bench/lean_rpc.py (nameko's wire protocol, ~0.5 ms of client CPU per call)
because client, service, RabbitMQ and PostgreSQL share the machine's two cores; nameko's own
ClusterRpcProxy figure is printed too, for reference. "2x" runs two tracking replicas (one leads
the relay and projector, see shared/chassis/leadership.py), as the Kubernetes Deployment does.
"""

from __future__ import annotations

# isort: off
import eventlet

eventlet.monkey_patch()

import shared.chassis  # noqa: E402,F401  (before psycopg loads: green waits)
# isort: on

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import kombu  # noqa: E402
import psycopg  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from bench.lean_rpc import LeanRpc  # noqa: E402
from shared.chassis.auth import mint_token  # noqa: E402
from shared.chassis.launcher import ServiceProcess, stop_all  # noqa: E402
from shared.contracts.cloudevents import CloudEvent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The services it starts, and the tokens it mints, use config.yaml's development secrets.
os.environ["EXPEDIENTE_ENV"] = "development"
AMQP = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//")
PG = dict(dbname=os.environ.get("BENCH_PG_DBNAME", "test"), host="127.0.0.1", port=5432,
          user=os.environ.get("BENCH_PG_USER", "postgres"))
POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
    "description": "Bache frente a la escuela", "location": {"lat": 20.5931, "long": -100.392},
    "channel": "app", "sla_hours": 72,
}


def pg_env(schema: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": PG["dbname"],
            "POSTGRES_HOST": PG["host"], "POSTGRES_PORT": str(PG["port"]),
            "POSTGRES_USER": PG["user"], "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema}


def create_schema(schema: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")


def drop_schema(schema: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def raw_append_rate(schema: str, count: int) -> float:
    """eventsourcing alone, in a plain process of its own (bench/raw_append.py): the stricter
    reference, since under eventlet with green waits the same loop runs slower."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PSYCOPG_WAIT_FUNC", None)
    out = subprocess.run([sys.executable, "-m", "bench.raw_append", schema, str(count)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def start_tracking(schema: str, exchange: str, port: int) -> ServiceProcess:
    env = {"EXPEDIENTE_ENV": "development", "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "TRACKING_POSTGRES_DBNAME": PG["dbname"], "TRACKING_POSTGRES_SCHEMA": schema,
           "POSTGRES_USER": PG["user"], "EVENTS_EXCHANGE": exchange, "LOG_LEVEL": "WARNING"}
    return ServiceProcess("tracking", env, port=port, log=None).start().wait_healthy(60)


def proxy_rate(count: int, window: int) -> float:
    """For reference: nameko's own ClusterRpcProxy (about 1 ms of client CPU per call)."""
    token = mint_token("bench", ("operator",))
    with ClusterRpcProxy({"AMQP_URI": AMQP}, context_data={"authorization": f"Bearer {token}"},
                         timeout=60) as rpc:
        started = time.perf_counter()
        pending = []
        for _ in range(count):
            pending.append(rpc.tracking.open_report.call_async(POTHOLE))
            if len(pending) >= window:
                pending.pop(0).result()
        for reply in pending:
            reply.result()
        return count / (time.perf_counter() - started)


def lean_rate(calls: list[tuple[str, str, tuple]], window: int, roles=("operator",)) -> tuple:
    """Pipelined calls through the lean client; returns (rate, answers)."""
    token = mint_token("bench", roles)
    client = LeanRpc(AMQP, {"authorization": f"Bearer {token}"})
    try:
        started = time.perf_counter()
        answers = client.pipeline(calls, window)
        return len(calls) / (time.perf_counter() - started), answers
    finally:
        client.close()


def http_rate(port: int, count: int, concurrency: int) -> float:
    import requests

    headers = {"Authorization": f"Bearer {mint_token('bench', ('operator',))}"}
    pool = eventlet.GreenPool(concurrency)
    sessions = [requests.Session() for _ in range(concurrency)]

    def post(i: int) -> None:
        response = sessions[i % concurrency].post(f"http://127.0.0.1:{port}/reports",
                                                  json=POTHOLE, headers=headers, timeout=60)
        response.raise_for_status()

    started = time.perf_counter()
    list(pool.imap(post, range(count)))
    return count / (time.perf_counter() - started)


def settle(port: int, seconds: float = 120) -> None:
    """Wait until the relay and the projector have caught up (tracking's /readyz says so)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            ready = json.loads(response.read())
        if not ready.get("relay_lag") and not ready.get("projection_lag"):
            return
        time.sleep(0.5)


def publish_latency(exchange: str, rate: float, seconds: float) -> tuple[float, float, int]:
    """Open reports at `rate`/s; latency = delivery on RabbitMQ - the event's save time."""
    queue = kombu.Queue(f"bench.latency.{uuid.uuid4().hex[:6]}",
                        kombu.Exchange(exchange, type="topic", durable=True),
                        routing_key="mx.expediente.report.opened", auto_delete=True)
    latencies: list[float] = []

    def on_message(body, message):
        event = CloudEvent.from_json(message.body)
        latencies.append(time.time() - event.time.timestamp())
        message.ack()

    total = int(rate * seconds)
    client = LeanRpc(AMQP, {"authorization": f"Bearer {mint_token('bench', ('operator',))}"})
    with kombu.Connection(AMQP) as conn, conn.Consumer([queue], callbacks=[on_message],
                                                       accept=None):
        started = time.perf_counter()
        sent = []
        for i in range(total):
            due = started + i / rate
            while time.perf_counter() < due:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=max(0.0005, due - time.perf_counter()))
            sent.append(client.send("tracking", "open_report", POTHOLE))
        client.wait(sent)
        deadline = time.monotonic() + 10
        while len(latencies) < total and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.5)
    client.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99, len(latencies)


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def rebuild(schema: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "TRACKING_POSTGRES_DBNAME": PG["dbname"], "TRACKING_POSTGRES_SCHEMA": schema,
           "POSTGRES_USER": PG["user"]}
    command = ["/usr/bin/env", str(Path(sys.executable).parent / "expediente-tracking"),
               "rebuild-projection"]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    import resource

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=4000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--raw", type=int, default=3000)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    tag = uuid.uuid4().hex[:6]
    raw_schema = f"bench_raw_{tag}"
    create_schema(raw_schema)
    try:
        figures["raw_append_per_s"] = raw_append_rate(raw_schema, args.raw)
    finally:
        drop_schema(raw_schema)
    open_call = ("tracking", "open_report", (POTHOLE,))
    for replicas in (1, 2):
        schema, exchange = f"bench_{tag}_{replicas}", f"bench.events.{tag}.{replicas}"
        create_schema(schema)
        services = [start_tracking(schema, exchange, 18001 + i) for i in range(replicas)]
        key = f"{replicas}x"
        try:
            lean_rate([open_call] * 300, args.window)  # warm up
            figures[f"rpc_open_per_s_{key}"], opened = lean_rate(
                [open_call] * args.reports, args.window)
            folios = [answer["folio"] for answer in opened[:2000]]
            figures[f"rpc_field_step_per_s_{key}"], _ = lean_rate(
                [("tracking", "run_command", ("assign", f, {"crew_id": "C-01"}))
                 for f in folios], args.window, roles=("supervisor",))
            if replicas == 1:
                figures["rpc_open_per_s_1x_nameko_proxy"] = proxy_rate(1500, args.window)
                figures["http_open_per_s_1x"] = http_rate(18001, 1500, 20)
            settle(18001)  # latency at a steady 200/s, not while the views digest the runs above
            p50, p99, seen = publish_latency(exchange, rate=200, seconds=10)
            figures[f"save_to_publish_p50_ms_{key}"] = p50 * 1000
            figures[f"save_to_publish_p99_ms_{key}"] = p99 * 1000
            figures[f"latency_samples_{key}"] = seen
            for i, service in enumerate(services):
                figures[f"tracking_{key}_{i}_rss_mb"], figures[f"tracking_{key}_{i}_peak_mb"] = \
                    rss_mb(service.process.pid)
        finally:
            stop_all(services)
        try:
            if replicas == 2:
                # With the services stopped: a running projector would take the rebuild's work.
                result = rebuild(schema)
                figures["rebuild_events"] = result["events"]
                figures["rebuild_events_per_s"] = result["events_per_second"]
                figures["rebuild_peak_rss_mb"] = result["peak_rss_mb"]
        finally:
            drop_schema(schema)
    for key in ("1x", "2x"):
        figures[f"rpc_open_vs_raw_ratio_{key}"] = (
            figures[f"rpc_open_per_s_{key}"] / figures["raw_append_per_s"])
    width = max(map(len, figures))
    print()
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:10.1f}")


if __name__ == "__main__":
    main()
