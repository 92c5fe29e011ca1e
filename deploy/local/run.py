"""`make run`: every service in the foreground on embedded SQLite stores and the local RabbitMQ.

Starts each service as its own process in development mode (EXPEDIENTE_ENV=development: the
development secrets of services/*/config.yaml are accepted), listening on 127.0.0.1 only unless
<SERVICE>_HTTP_ADDRESS says otherwise; waits until each answers /healthz, loads demo data on the
first run, prints the URLs, and on Ctrl-C stops every process cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # deploy.local, beside the installed packages

from deploy.local import stand_ins  # noqa: E402
from shared.chassis.launcher import (  # noqa: E402
    PORTS,
    ServiceFailed,
    ServiceProcess,
    start_all,
    stop_all,
)

VENV_BIN = ROOT / ".venv" / "bin"

# (service, HTTP port) — later services join this list as they are built.
SERVICES = [(name, PORTS[name])
            for name in ("intake", "tracking", "crews", "notifications", "billing")]
LOOPBACK = ("127.", "localhost:", "[::1]:")
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
LOCAL_BROKER = ("", DEFAULT_BROKER, "amqp://guest:guest@localhost:5672//")


def service_env() -> dict[str, str]:
    env = dict(os.environ)
    # Development mode lets the demo secrets in, so only this machine may reach the services.
    env["EXPEDIENTE_ENV"] = "development"
    env.setdefault("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    env.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
    env["PYTHONPATH"] = str(ROOT)
    for name, port in SERVICES:
        env.setdefault(f"{name.upper()}_SQLITE_DBNAME", str(ROOT / "var" / f"{name}.sqlite"))
        env.setdefault(f"{name.upper()}_HTTP_ADDRESS", f"127.0.0.1:{port}")
    for key, value in stand_ins.notification_env().items():
        env.setdefault(key, value)
    # One origin for the status page everywhere: its live stream is allowed from there only.
    env.setdefault("STATUS_PAGE_URL", f"http://127.0.0.1:{PORTS['tracking']}/seguimiento")
    env.setdefault("NOTIFICATIONS_URL", f"http://127.0.0.1:{PORTS['notifications']}")
    env.setdefault("NOTIFICATIONS_PUBLIC_URL", f"http://127.0.0.1:{PORTS['notifications']}")
    env.setdefault("BILLING_PUBLIC_URL", f"http://127.0.0.1:{PORTS['billing']}")
    for key, value in stand_ins.payments_env().items():
        env.setdefault(key, value)
    return env


def stale_queues(names: list[str]) -> list[str]:
    """The queues of an earlier run's services: each consumer's, its retry and parked queues,
    and the RPC queues (`rpc-<service>`); reply queues expire by themselves."""
    services = tuple(name for name, _ in SERVICES)
    return [queue for queue in names
            if queue.startswith(tuple(f"{s}." for s in services))
            or queue in {f"rpc-{s}" for s in services}]


def forget_earlier_runs(env: dict[str, str], fresh: bool) -> None:
    """New stores (no var/tracking.sqlite yet) must not receive an earlier run's events: a retry
    queue's message, or one a consumer had not reached, would name folios the new stores hand
    out again. So on the local broker (the default AMQP_URI) the services' durable queues are
    deleted before they start (listed by rabbitmqctl, deleted over AMQP: one rabbitmqctl call
    takes seconds); each service declares its own again."""
    if not fresh or env.get("AMQP_URI", "") not in LOCAL_BROKER:
        return
    import amqp

    try:
        listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", "/", "name"],
                                capture_output=True, text=True, check=True, timeout=60)
        stale = stale_queues(listed.stdout.split())
        if not stale:
            return
        with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest",
                             virtual_host="/", connect_timeout=10) as connection:
            channel = connection.channel()
            for queue in stale:
                channel.queue_delete(queue)
        print(f"removed {len(stale)} queues of an earlier run (new stores in var/)")
    except (OSError, subprocess.SubprocessError, amqp.exceptions.AMQPError) as failed:
        print(f"could not clear an earlier run's queues ({failed}); events still waiting there "
              "may reach the new stores", file=sys.stderr)


def processes_for(env: dict[str, str]) -> list[ServiceProcess]:
    """One process per service, on the address its environment names, output on this terminal."""
    found = []
    for name, _port in SERVICES:
        host, _, port = env[f"{name.upper()}_HTTP_ADDRESS"].rpartition(":")
        found.append(ServiceProcess(name, env, port=int(port), host=host, log=None))
    return found


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    fresh = not (ROOT / "var" / "tracking.sqlite").exists()
    (ROOT / "var").mkdir(exist_ok=True)
    env = service_env()
    forget_earlier_runs(env, fresh)
    processes = processes_for(env)
    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    helpers = stand_ins.start()  # the SMTP sink, the fake SMS/WhatsApp provider, push
    try:
        start_all(processes)
        receiver = stand_ins.start_webhook_receiver("http://127.0.0.1:8003")
        helpers += [receiver] if receiver else []
        demo = subprocess.run([str(VENV_BIN / "python"), str(ROOT / "deploy/local/demo.py")],
                              cwd=ROOT, env=env, check=False)
        if demo.returncode != 0:
            print("demo data could not be loaded (the services still run)", file=sys.stderr)
        print_urls(env)
        while all(process.running() for process in processes):
            time.sleep(0.5)
        dead = [process.service for process in processes if not process.running()]
        print(f"stopped unexpectedly: {', '.join(dead)}", file=sys.stderr)
        return 1
    except ServiceFailed as failed:
        print(f"{failed}\n(see the service's log above)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop_all(processes)
        stand_ins.stop(helpers)


def print_urls(env: dict[str, str]) -> None:
    print("\nExpediente is running in development mode (Ctrl-C stops everything):")
    for name, port in SERVICES:
        print(f"  {name:<14} http://127.0.0.1:{port}/   (/healthz /readyz /metrics)   "
              f"listening on {env[f'{name.upper()}_HTTP_ADDRESS']}")
    print("  RabbitMQ       amqp://guest:guest@127.0.0.1:5672//  exchange expediente.events")
    print("\nFor citizens:")
    print("  portal         http://127.0.0.1:8000/          (report, look up a folio)")
    print("  status page    http://127.0.0.1:8001/seguimiento/<folio>")
    print("  Open311        http://127.0.0.1:8000/open311/v2/discovery.json"
          "   (api_key=expediente-demo-key)")
    print("\nPaying predial, water and fines (billing, :8004; the card gateway is a local fake):")
    print("  pay            http://127.0.0.1:8004/pagos   (predial 14-001-0123-045, verificador "
          "7391;")
    print("                 agua AG-004512, 5521; multa M-2026-000123, placa UQR123A)")
    print("  card gateway   http://127.0.0.1:8030/_checkouts  (the fake: every checkout and "
          "callback)")
    print("  repair costs   http://127.0.0.1:8004/costs?by=department  (supervisor token)")
    print("\nFor supervisors and crews (bearer token: .venv/bin/expediente mint-token):")
    print("  crews          http://127.0.0.1:8002/crews      (40 demo crews)")
    print("  materials      http://127.0.0.1:8002/materials  (the catalog, with prices)")
    print("  field app      http://127.0.0.1:8002/app/       (a crew member's phone; "
          "demo sign-in at /app/demo)")
    print("  board          http://127.0.0.1:8002/board      (a department's crews and jobs)")
    print("\nWhat citizens and municipal systems are told (notifications, :8003):")
    print(f"  email          {ROOT / 'var' / 'mail'}/*.eml   (the local SMTP sink on :2525)")
    print("  SMS, WhatsApp  http://127.0.0.1:8025/_messages  (the local fake provider)")
    print("  web push       http://127.0.0.1:8089/_received  (the local push service, decrypted)")
    print("  webhooks       http://127.0.0.1:8099/_received  (a municipal system, each verified)")
    print("  live steps     http://127.0.0.1:8003/live/<folio>  (Server-Sent Events; the status "
          "page listens)")
    print("  deliveries     http://127.0.0.1:8003/deliveries     (admin token: each message "
          "and its attempts)")
    exposed = [name for name, _ in SERVICES
               if not env[f"{name.upper()}_HTTP_ADDRESS"].startswith(LOOPBACK)]
    if exposed:
        print(f"\nWARNING: listening beyond this machine ({', '.join(exposed)}) with the public "
              "development secrets: whoever reaches it can act as admin.")
    else:
        print("\nOnly this machine can reach them (the development secrets are public). To listen "
              "on every interface,\ne.g. for a demo on a trusted network: "
              "INTAKE_HTTP_ADDRESS=0.0.0.0:8000 TRACKING_HTTP_ADDRESS=0.0.0.0:8001 "
              "CREWS_HTTP_ADDRESS=0.0.0.0:8002 NOTIFICATIONS_HTTP_ADDRESS=0.0.0.0:8003 "
              "BILLING_HTTP_ADDRESS=0.0.0.0:8004 make run")
    print("\nTry (the CLI signs development tokens in development mode only):")
    print("  export EXPEDIENTE_ENV=development")
    print("  .venv/bin/expediente call tracking search_reports '{}' --role supervisor")
    print("  .venv/bin/expediente watch --compact       (every event as it is published)")
    print("  curl http://127.0.0.1:8001/reports/<folio>      (folios listed above)")


if __name__ == "__main__":
    sys.exit(main())
