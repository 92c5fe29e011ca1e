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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"

# (service, HTTP port) — later services join this list as they are built.
SERVICES = [("intake", 8000), ("tracking", 8001)]
LOOPBACK = ("127.", "localhost:", "[::1]:")


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
    return env


def start(name: str, env: dict[str, str]) -> subprocess.Popen:
    command = [str(VENV_BIN / "nameko"), "run", "--config",
               str(ROOT / "services" / name / "config.yaml"), f"services.{name}.service"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def wait_healthy(port: int, process: subprocess.Popen, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def stop_all(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it")
            os.killpg(process.pid, signal.SIGKILL)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    env = service_env()
    processes: dict[str, subprocess.Popen] = {}
    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name, _port in SERVICES:
            processes[name] = start(name, env)
        for name, port in SERVICES:
            if not wait_healthy(port, processes[name]):
                print(f"{name} did not become healthy; see its log above", file=sys.stderr)
                return 1
        demo = subprocess.run([str(VENV_BIN / "python"), str(ROOT / "deploy/local/demo.py")],
                              cwd=ROOT, env=env, check=False)
        if demo.returncode != 0:
            print("demo data could not be loaded (the services still run)", file=sys.stderr)
        print_urls(env)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in processes.items() if p.poll() is not None]
        print(f"stopped unexpectedly: {', '.join(dead)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop_all(processes)


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
    exposed = [name for name, _ in SERVICES
               if not env[f"{name.upper()}_HTTP_ADDRESS"].startswith(LOOPBACK)]
    if exposed:
        print(f"\nWARNING: listening beyond this machine ({', '.join(exposed)}) with the public "
              "development secrets: whoever reaches it can act as admin.")
    else:
        print("\nOnly this machine can reach them (the development secrets are public). To listen "
              "on every interface,\ne.g. for a demo on a trusted network: "
              "INTAKE_HTTP_ADDRESS=0.0.0.0:8000 TRACKING_HTTP_ADDRESS=0.0.0.0:8001 make run")
    print("\nTry (the CLI signs development tokens in development mode only):")
    print("  export EXPEDIENTE_ENV=development")
    print("  .venv/bin/expediente call tracking search_reports '{}' --role supervisor")
    print("  .venv/bin/expediente watch --compact       (every event as it is published)")
    print("  curl http://127.0.0.1:8001/reports/<folio>      (folios listed above)")


if __name__ == "__main__":
    sys.exit(main())
