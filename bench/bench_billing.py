"""Benchmark billing on PostgreSQL: payments applied at the window (RPC, pipelined), a bank file
of 10,000 payments imported with the CLI (and imported again: every row a duplicate), a month's
statement batch rendered as PDFs and handed to notifications, and statement reads over HTTP at
200 per second. Prints figures; asserts nothing.

    make bench-billing     (or: .venv/bin/python -m bench.bench_billing --accounts 2000)

Billing and notifications run as real `nameko run` processes on schemas of their own and a
RabbitMQ virtual host of their own; notifications mails the statements to the local SMTP sink.
"""

from __future__ import annotations

# isort: off
import eventlet

eventlet.monkey_patch()

import shared.chassis  # noqa: E402,F401  (before psycopg loads: green waits)
from shared.chassis.launcher import ServiceProcess, stop_all  # noqa: E402
# isort: on

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.bench_intake import PG, Client, open_loop, rss_mb, sh  # noqa: E402
from bench.lean_rpc import LeanRpc  # noqa: E402
from services.notifications.webpush import generate_private_key  # noqa: E402
from shared.chassis.auth import mint_token  # noqa: E402

import psycopg  # noqa: E402  isort: skip

ROOT = Path(__file__).resolve().parents[1]
BILLING_PORT, NOTIFY_PORT, SMTP_PORT = 18204, 18203, 12525


def bearer(role: str, **claims: str) -> str:
    return f"Bearer {mint_token('bench', (role,), ttl_seconds=7200, **claims)}"


def predial_key(n: int) -> str:
    return f"22-{n // 10000:03d}-{n % 10000:04d}-001"


def water_key(n: int) -> str:
    return f"AG-{n:06d}"


def seed(amqp: str, accounts: int, statements: int, window: int) -> None:
    """`accounts` predial accounts with their 2027 levy; `statements` water contracts with a
    reading each and an email for their statement."""
    predial = LeanRpc(amqp, {"authorization": bearer("billing_clerk", area="predial")})
    water = LeanRpc(amqp, {"authorization": bearer("billing_clerk", area="agua")})
    try:
        predial.pipeline([("billing", "open_account", ({
            "kind": "predial", "key": predial_key(n), "check": "1234",
            "holder": f"Contribuyente {n}", "description": f"Calle {n}",
            "cadastral_value": "900000.00"},)) for n in range(accounts)], window)
        predial.pipeline([("billing", "assess_predial", (predial_key(n), 2027))
                          for n in range(accounts)], window)
        today = date.today()
        water.pipeline([("billing", "open_account", ({
            "kind": "agua", "key": water_key(n), "check": "5521", "holder": f"Usuario {n}",
            "description": f"Calle {n}", "initial_reading": "100",
            "opened_on": (today - timedelta(days=40)).isoformat()},))
            for n in range(statements)], window)
        water.pipeline([("billing", "record_reading", (water_key(n), {
            "read_on": (today - timedelta(days=5)).isoformat(), "reading": "125"}))
            for n in range(statements)], window)
        water.pipeline([("billing", "set_statement_contact", ("agua", water_key(n), {
            "channel": "email", "email": f"usuario{n}@example.com"}))
            for n in range(statements)], window)
    finally:
        predial.close()
        water.close()


def window_payments(amqp: str, accounts: int, count: int, window: int) -> float:
    clerk = LeanRpc(amqp, {"authorization": bearer("billing_clerk", area="predial")})
    tag = uuid.uuid4().hex[:6]
    try:
        started = time.perf_counter()
        clerk.pipeline([("billing", "window_payment", ("predial", predial_key(n % accounts), {
            "reference": f"V-{tag}-{n}", "amount": "10.00"})) for n in range(count)], window)
        return count / (time.perf_counter() - started)
    finally:
        clerk.close()


def bank_file(folder: Path, accounts: int, rows: int) -> Path:
    path = folder / "banco.csv"
    tag = uuid.uuid4().hex[:6]
    lines = ["referencia,fecha,concepto,cuenta,importe"]
    lines += [f"BNK-{tag}-{n},{date.today().strftime('%d/%m/%Y')},predial,"
              f"{predial_key(n % accounts)},5.00" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "services.billing.cli", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode not in (0, 2):
        raise SystemExit(f"expediente-billing {args[0]} failed: {done.stderr[-1500:]}")
    return time.perf_counter() - started


def read_latencies(client: Client, accounts: int, rate: float, seconds: float
                   ) -> tuple[list[float], float]:
    latencies: list[float] = []

    def read(n: int) -> None:
        started = time.perf_counter()
        status, text = client.request("GET", f"/api/cuentas/predial/{predial_key(n % accounts)}"
                                             "?check=1234")
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"statement read failed: {status} {text[:300]!r}")

    achieved = open_loop(read, rate, seconds)
    return sorted(latencies), achieved


def mails(folder: Path, expected: int, seconds: float) -> tuple[int, float]:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        found = len(list(folder.glob("*.eml"))) if folder.exists() else 0
        if found >= expected:
            return found, time.monotonic() - started
        time.sleep(0.2)
    return len(list(folder.glob("*.eml"))), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=2000, help="predial accounts")
    parser.add_argument("--payments", type=int, default=3000, help="window payments")
    parser.add_argument("--bank-rows", type=int, default=10000)
    parser.add_argument("--statements", type=int, default=600, help="water contracts mailed")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--read-rate", type=float, default=200.0)
    parser.add_argument("--read-seconds", type=float, default=15.0)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    vhost, billing_schema, notify_schema = f"bench-{tag}", f"bench_bil_{tag}", f"bench_ntf_{tag}"
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    folder = Path(tempfile.mkdtemp(prefix="bench-billing-"))
    sh("rabbitmqctl", "-q", "add_vhost", vhost)
    sh("rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    with psycopg.connect(**PG, autocommit=True) as conn:
        for schema in (billing_schema, notify_schema):
            conn.execute(f"CREATE SCHEMA {schema}")
    env = {**os.environ, "PSYCOPG_WAIT_FUNC": "wait_select", "EXPEDIENTE_ENV": "development",
           "PYTHONPATH": str(ROOT), "AMQP_URI": amqp,
           "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_USER": PG["user"],
           "BILLING_POSTGRES_DBNAME": PG["dbname"], "BILLING_POSTGRES_SCHEMA": billing_schema,
           "NOTIFICATIONS_POSTGRES_DBNAME": PG["dbname"],
           "NOTIFICATIONS_POSTGRES_SCHEMA": notify_schema,
           "BILLING_HTTP_ADDRESS": f"127.0.0.1:{BILLING_PORT}",
           "NOTIFICATIONS_HTTP_ADDRESS": f"127.0.0.1:{NOTIFY_PORT}",
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(SMTP_PORT), "QUIET_HOURS": "",
           "SMTP_FROM": "Tesorería <tesoreria@example.gob.mx>",
           "VAPID_PRIVATE_KEY": generate_private_key(), "LOG_LEVEL": "WARNING"}
    sink = subprocess.Popen([sys.executable, str(ROOT / "deploy/local/smtp_sink.py"), "--host",
                             "127.0.0.1", "--port", str(SMTP_PORT), "--maildir",
                             str(folder / "mail")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    processes: list[ServiceProcess] = []
    figures: dict[str, float] = {}
    try:
        for service, port in (("notifications", NOTIFY_PORT), ("billing", BILLING_PORT)):
            processes.append(ServiceProcess(service, env, port=port, log=None).start()
                             .wait_healthy(60))
        seed(amqp, args.accounts, args.statements, args.window)
        window_payments(amqp, args.accounts, 200, args.window)  # warm up
        figures["window_payments_per_s"] = window_payments(amqp, args.accounts, args.payments,
                                                           args.window)
        path = bank_file(folder, args.accounts, args.bank_rows)
        elapsed = cli(env, "import-bank", str(path))
        figures["bank_file_rows"] = args.bank_rows
        figures["bank_file_import_s"] = elapsed
        figures["bank_payments_per_s"] = args.bank_rows / elapsed
        figures["bank_file_again_s"] = cli(env, "import-bank", str(path))  # already imported
        period = date.today().strftime("%Y-%m")
        elapsed = cli(env, "statements", period, "--kind", "agua")
        figures["statements_pdf_sent"] = args.statements
        figures["statements_pdf_per_s"] = args.statements / elapsed
        mailed, waited = mails(folder / "mail", args.statements, 300)
        figures["statements_mailed"] = mailed
        figures["statements_mailed_after_batch_s"] = waited
        client = Client(BILLING_PORT, 32)
        reads, achieved = read_latencies(client, args.accounts, args.read_rate,
                                         args.read_seconds)
        figures["statement_reads_per_s"] = achieved
        figures["statement_read_p50_ms"] = reads[len(reads) // 2] * 1000
        figures["statement_read_p99_ms"] = reads[int(len(reads) * 0.99)] * 1000
        figures["statement_read_max_ms"] = reads[-1] * 1000
        figures["billing_peak_rss_mb"] = rss_mb(processes[1].process.pid)
    finally:
        stop_all(processes)
        sink.terminate()
        with psycopg.connect(**PG, autocommit=True) as conn:
            for schema in (billing_schema, notify_schema):
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        sh("rabbitmqctl", "-q", "delete_vhost", vhost)
    for name, value in figures.items():
        print(f"{name:<40} {value:10.2f}")


if __name__ == "__main__":
    main()
