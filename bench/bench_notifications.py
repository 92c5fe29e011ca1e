"""Benchmark notifications on PostgreSQL: how long a report step takes to reach a browser's live
stream and a municipal system's webhook, at 100 and 500 steps/s offered, and how many emails a
second reach the local SMTP sink. Prints figures and whether the issue's targets were met;
asserts nothing.

    make bench-notifications     (or: .venv/bin/python -m bench.bench_notifications --rate 100)

Tracking and notifications run as real `nameko run` processes on schemas of their own and a
RabbitMQ virtual host of their own, beside deploy/local/smtp_sink.py. Steps are tracking's
commands by RPC (a crew's field steps, a supervisor's close, reopen and assign, in a cycle), each
report's one at a time; latencies run from the event's `time` (tracking's clock, this machine's)
to the frame on `GET /live/{folio}` and to the POST at the bench's own webhook receiver. The
service is tuned only by its settings in the environment (DELIVERY_CONCURRENCY=40 make ...).
"""

from __future__ import annotations

# isort: off
import eventlet

eventlet.monkey_patch()

import shared.chassis  # noqa: E402,F401  (before psycopg loads: green waits)
from shared.chassis.launcher import ServiceProcess, start_all, stop_all  # noqa: E402
# isort: on

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import kombu  # noqa: E402

from bench.bench_crews import POTHOLE, bearer, published  # noqa: E402
from bench.bench_intake import PG, sh  # noqa: E402
from bench.lean_rpc import LeanRpc  # noqa: E402
from bench.notify_probes import (  # noqa: E402
    Arrivals,
    Cpu,
    LiveStreams,
    Step,
    StepDriver,
    WebhookReceiver,
    free_port,
    start_sink,
    stop_group,
)
from shared.contracts.contacts import EXCHANGE, ROUTING_KEY  # noqa: E402

import psycopg  # noqa: E402  isort: skip

TARGETS = {"p50": 50.0, "p99": 250.0}  # ms, at 100 steps/s (the issue's)
EMAIL_TARGET = 200.0  # messages/s
OPENED, ASSIGNED = "mx.expediente.report.opened", "mx.expediente.report.assigned"
DB: dict[str, Any] = {**PG, "autocommit": True}
SENT = ("FROM deliveries d JOIN seen_events e ON e.event_id = d.event_id WHERE "
        "d.channel = 'email' AND d.status = 'sent' AND e.type = %s")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def cycle() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """The commands each report goes through, over and over: every one a step citizens see."""
    crew = {"nameko.authorization": bearer("crew", crew_id="C-01")}
    supervisor = {"nameko.authorization": bearer("supervisor")}
    return [("dispatch_crew", crew, {}), ("set_en_route", crew, {}), ("arrive", crew, {}),
            ("complete_work", crew, {"notes": "Bache tapado"}),
            ("close_report", supervisor, {"resolution": "fixed"}),
            ("reopen", supervisor, {"reason": "El bache volvió"}),
            ("assign", supervisor, {"crew_id": "C-01"})]


def rpc_all(amqp: str, token: str, calls: list[tuple[str, str, tuple]], window: int
            ) -> tuple[list[Any], float]:
    """Answers of `calls` run pipelined with `token`, and calls per second."""
    client = LeanRpc(amqp, {"authorization": token})
    try:
        began = time.perf_counter()
        answers = client.pipeline(calls, window)
        return answers, len(calls) / (time.perf_counter() - began)
    finally:
        client.close()


def assign_all(amqp: str, folios: list[str], window: int) -> float:
    return rpc_all(amqp, bearer("supervisor"), [("tracking", "run_command", (
        "assign", folio, {"crew_id": "C-01"})) for folio in folios], window)[1]


def http_json(method: str, url: str, body: dict[str, Any] | None, token: str) -> Any:
    data = json.dumps(body).encode() if body else None
    request = urllib.request.Request(url, data, method=method, headers={
        "Authorization": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def wait_for(done: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        eventlet.sleep(0.1)
    return True


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else math.nan


def figures(answered: dict[Step, float], arrivals: Arrivals) -> dict[str, float]:
    """Milliseconds from each event's time (and from tracking's answer) to its arrival; a step
    that never came counts as infinitely late."""
    from_event, from_answer = [], []
    for step, answered_at in answered.items():
        arrived, event_time = arrivals.get(step, (math.inf, 0.0))
        from_event.append(1000 * (arrived - event_time))
        from_answer.append(1000 * (arrived - answered_at))
    from_event.sort()
    from_answer.sort()
    return {"p50": percentile(from_event, 0.5), "p99": percentile(from_event, 0.99),
            "max": from_event[-1] if from_event else math.nan,
            "answer_p50": percentile(from_answer, 0.5),
            "answer_p99": percentile(from_answer, 0.99),
            "late": sum(1 for step in answered if step not in arrivals)}


def step_phase(driver: StepDriver, streams: LiveStreams, receiver: WebhookReceiver,
               notifications: str, folios: list[str], rate: float, duration: float,
               settle: float, cpu: Cpu) -> dict[str, Any]:
    """Steps at `rate` for `duration` seconds, to a webhook of the phase's own (deleted after:
    what is still pending is cancelled, so the next phase starts clean)."""
    system = bearer("system")
    hook = http_json("POST", f"{notifications}/webhooks", {"url": receiver.url}, system)
    say(f"{rate:.0f} steps/s for {duration:.0f} s")
    cpu.mark()
    answered, achieved = driver.drive(folios, rate, duration)
    usage = cpu.report()
    live = {step: at for step, at in answered.items() if step[0] in streams.folios}
    wait_for(lambda: all(step in streams.arrivals for step in live)
             and all(step in receiver.arrivals for step in answered), settle)
    http_json("DELETE", f"{notifications}/webhooks/{hook['id']}", None, system)
    return {"offered": rate, "achieved": achieved, "steps": len(answered), "cpu": usage,
            "sse": figures(live, streams.arrivals),
            "webhook": figures(answered, receiver.arrivals)}


def sent_times(db: psycopg.Connection, event_type: str) -> list[float]:
    """When each email for a step of this type was settled as sent, in order."""
    rows = db.execute(f"SELECT d.settled_at {SENT}", (event_type,)).fetchall()
    return sorted(datetime.fromisoformat(at).timestamp() for (at,) in rows)


def all_sent(db: psycopg.Connection, event_type: str, count: int) -> None:
    wait_for(lambda: (db.execute(f"SELECT count(*) {SENT}", (event_type,)).fetchone() or (0,))
             >= (count,), 120)


def email_rate(times: list[float], since: float) -> dict[str, float]:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"sent": len(times), "per_s": (len(times) - 1) / span if span else math.nan,
            "from_start_per_s": len(times) / (times[-1] - since) if times else math.nan}


def subscribe_reporters(amqp: str, reports: list[dict[str, Any]]) -> None:
    """What intake hands over for a citizen who gave an email: one request per report."""
    with kombu.Connection(amqp) as conn:
        producer = conn.Producer()
        for n, report in enumerate(reports):
            body = {"folio": report["folio"], "access_token": report["access_token"],
                    "channel": "phone_070", "requested_at": datetime.now(UTC).isoformat(),
                    "contact": {"email": f"vecina{n}@example.com", "notify_by": ["email"]}}
            producer.publish(json.dumps(body), exchange=EXCHANGE, routing_key=ROUTING_KEY,
                             content_type="application/json", delivery_mode=2)


def email_phase(amqp: str, count: int, window: int, db: psycopg.Connection,
                replicas: list[ServiceProcess], tracking_port: int, cpu: Cpu) -> dict[str, Any]:
    """`count` reporters subscribed by email: first each one's catch-up message (the `opened`
    step, sent as the handoff comes in), then one more report event each (`assigned`), recorded
    by tracking while notifications is down and sent as a backlog when it comes back."""
    reports, _ = rpc_all(amqp, bearer("operator"),
                         [("tracking", "open_report", (POTHOLE,))] * count, window)
    folios = [report["folio"] for report in reports]
    wait_for(lambda: db.execute("SELECT count(*) FROM seen_events WHERE type = %s AND folio = "
                                "ANY(%s)", (OPENED, folios)).fetchone() == (count,), 120)
    say(f"{count} email reporters subscribed")
    cpu.mark()
    began = time.time()
    subscribe_reporters(amqp, reports)
    all_sent(db, OPENED, count)
    result = {"catch_up": {**email_rate(sent_times(db, OPENED), began), "cpu": cpu.report()}}
    say(f"{count} report events while notifications is down, then sent as a backlog")
    stop_all(replicas)
    assigns_per_s = assign_all(amqp, folios, window)
    published(tracking_port)
    began = time.time()
    start_all(replicas, 60)
    cpu.pids.update(pids(replicas))
    say(f"notifications is back: {pids(replicas)}")
    cpu.mark()
    all_sent(db, ASSIGNED, count)
    result["backlog"] = {**email_rate(sent_times(db, ASSIGNED), began), "cpu": cpu.report(),
                         "assigns_per_s": assigns_per_s}
    return result


def pids(replicas: list[ServiceProcess]) -> dict[str, int]:
    return {f"notifications{n if n > 1 else ''}": replica.process.pid
            for n, replica in enumerate(replicas, 1) if replica.process is not None}


def show(results: dict[str, Any], args: argparse.Namespace) -> None:
    def ms(value: float) -> str:
        return f"{value:>8.1f}" if math.isfinite(value) else f"{'late':>8}"

    processes = f"{args.replicas} process{'es' if args.replicas > 1 else ''}"
    print(f"\nnotifications on PostgreSQL ({processes}): {args.reports} reports stepped, "
          f"{args.streams} of them streamed live, one webhook; latencies in ms from the event's "
          f"time (and from tracking's answer); late: not there {args.settle:.0f} s after the "
          f"last step")
    print(f"{'steps':<8}{'offered/s':>10}{'achieved/s':>11}{'steps':>7}  {'to':<8}{'p50':>8}"
          f"{'p99':>8}{'max':>8}{'ans p50':>8}{'ans p99':>8}{'late':>6}")
    for name in ("warm-up", "low", "high"):
        row = results[name]
        for n, door in enumerate(("sse", "webhook")):
            f = row[door]
            head = (f"{name:<8}{row['offered']:>10.0f}{row['achieved']:>11.1f}{row['steps']:>7}"
                    if n == 0 else " " * 36)
            print(f"{head}  {door:<8}{ms(f['p50'])}{ms(f['p99'])}{ms(f['max'])}"
                  f"{ms(f['answer_p50'])}{ms(f['answer_p99'])}{f['late']:>6}")
        print(f"{'':<8}cpu while stepping: {row['cpu']}")
    low = results["low"]
    for door in ("sse", "webhook"):
        for figure, target in TARGETS.items():
            value = low[door][figure]
            print(f"target at {low['offered']:.0f} steps/s, {door} {figure} < {target:.0f} ms: "
                  f"{value:.1f} ms, {'met' if value < target else 'MISSED'}")
    email = results["email"]
    for name, what in (("catch_up", "handoff -> email, live"),
                       ("backlog", "report events -> email, a backlog")):
        row = email[name]
        print(f"email ({what}): {row['sent']} sent, {row['per_s']:.1f}/s first to last, "
              f"{row['from_start_per_s']:.1f}/s from the start; cpu: {row['cpu']}")
    print(f"  (tracking recorded the backlog's events at {email['backlog']['assigns_per_s']:.0f}"
          f"/s; email deliveries by status: {email['statuses']}; .eml files in the sink: "
          f"{email['eml_files']}, {'equal to' if email['equal'] else 'NOT equal to'} those sent)")
    for name in ("catch_up", "backlog"):
        value = email[name]["per_s"]
        print(f"target email {name} >= {EMAIL_TARGET:.0f}/s: {value:.1f}/s, "
              f"{'met' if value >= EMAIL_TARGET else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=200, help="reports stepped in turn")
    parser.add_argument("--streams", type=int, default=200, help="of them, streamed live")
    parser.add_argument("--rate", type=float, default=100.0, help="steps/s offered")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--high-rate", type=float, default=500.0)
    parser.add_argument("--high-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=20.0, help="s to wait for arrivals")
    parser.add_argument("--emails", type=int, default=2000, help="email reporters")
    parser.add_argument("--replicas", type=int, default=1, help="notifications processes")
    parser.add_argument("--window", type=int, default=64, help="RPC calls in flight (setup)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    vhost, tracking_schema, notify_schema = f"bench-{tag}", f"bench_trk_{tag}", f"bench_ntf_{tag}"
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    work = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    maildir = work / "mail"
    sh("rabbitmqctl", "-q", "add_vhost", vhost)
    sh("rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    with psycopg.connect(**DB) as conn:
        for schema in (tracking_schema, notify_schema):
            conn.execute(f"CREATE SCHEMA {schema}")
    sink_port, tracking_port = free_port(), free_port()
    env = {"PSYCOPG_WAIT_FUNC": "wait_select", "EXPEDIENTE_ENV": "development",
           "AMQP_URI": amqp, "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "POSTGRES_USER": DB["user"], "TRACKING_POSTGRES_DBNAME": DB["dbname"],
           "TRACKING_POSTGRES_SCHEMA": tracking_schema, "LOG_LEVEL": "WARNING"}
    tracking = ServiceProcess("tracking", env, port=tracking_port, log=work / "tracking.log")
    notify_env = {
        **env, "NOTIFICATIONS_POSTGRES_DBNAME": DB["dbname"],
        "NOTIFICATIONS_POSTGRES_SCHEMA": notify_schema, "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink_port), "SMTP_FROM": "Avisos <avisos@example.gob.mx>",
        "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true", "QUIET_HOURS": "",
        "STATUS_PAGE_URL": f"http://127.0.0.1:{tracking_port}/seguimiento"}
    replicas = []
    for n in range(args.replicas):
        port = free_port()
        replicas.append(ServiceProcess("notifications", {
            **notify_env, "NOTIFICATIONS_PUBLIC_URL": f"http://127.0.0.1:{port}"},
            port=port, log=work / f"notifications{n + 1}.log"))
    notifications = replicas[0]  # the one the bench's streams and webhooks talk to
    sink: subprocess.Popen[bytes] | None = None
    probes: list[Any] = []
    results: dict[str, Any] = {}

    def terminated(signum: int, frame: Any) -> None:
        """Killed (a timeout, say): no process of ours outlives the bench."""
        for process in [tracking.process, *(r.process for r in replicas), sink]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        raise SystemExit(128 + signum)  # the rest in `finally`, on the main green thread

    signal.signal(signal.SIGTERM, terminated)
    try:
        sink = start_sink(sink_port, maildir)
        start_all([tracking, notifications], 90)
        start_all(replicas[1:], 90)  # once the first has made the tables
        assert tracking.process is not None
        say(f"tracking pid {tracking.process.pid}, {pids(replicas)}, smtp sink pid "
            f"{sink.pid}; logs in {work}")
        receiver = WebhookReceiver()
        probes.append(receiver)
        folios = [r["folio"] for r in rpc_all(amqp, bearer("operator"), [
            ("tracking", "open_report", (POTHOLE,))] * args.reports, args.window)[0]]
        assign_all(amqp, folios, args.window)
        streams = LiveStreams(notifications.port, folios[:args.streams])
        probes.append(streams)
        if not wait_for(lambda: all((f, 2) in streams.arrivals for f in streams.folios), 60):
            raise SystemExit("the live streams did not all open")
        driver = StepDriver(amqp, cycle())
        probes.append(driver)
        cpu = Cpu({"tracking": tracking.process.pid, **pids(replicas), "sink": sink.pid,
                   "bench": os.getpid()})
        for name, rate, seconds in (("warm-up", args.rate, len(folios) / args.rate),
                                    ("low", args.rate, args.seconds),
                                    ("high", args.high_rate, args.high_seconds)):
            results[name] = step_phase(driver, streams, receiver, notifications.url, folios,
                                       rate, seconds, args.settle, cpu)
        streams.close()
        with psycopg.connect(**DB) as db:
            db.execute(f"SET search_path TO {notify_schema}")
            results["email"] = email_phase(amqp, args.emails, args.window, db, replicas,
                                           tracking_port, cpu)
            results["email"]["statuses"] = dict(db.execute(
                "SELECT status, count(*) FROM deliveries WHERE channel = 'email' "
                "GROUP BY status").fetchall())
        results["email"]["eml_files"] = len(list(maildir.glob("*.eml")))
        results["email"]["equal"] = (results["email"]["eml_files"]
                                     == results["email"]["statuses"].get("sent"))
    finally:
        for probe in reversed(probes):
            probe.close()
        stop_all([tracking, *replicas])
        if sink is not None:
            stop_group(sink)
        with psycopg.connect(**DB) as conn:
            for schema in (tracking_schema, notify_schema):
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        sh("rabbitmqctl", "-q", "delete_vhost", vhost)
    shutil.rmtree(work, ignore_errors=True)  # kept, with the services' logs, when it failed
    show(results, args)


if __name__ == "__main__":
    main()
