"""What bench_notifications runs beside the services and watches them with: an open-loop driver of
report steps over RPC, a Server-Sent Events reader per folio, a webhook receiver (each recording
when a step was answered or arrived, in wall-clock seconds: the clock of the events' `time`), the
local SMTP sink's process, and the CPU each process used.

Everything runs green in the bench's own process (eventlet, monkey-patched by the caller)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import amqp
import eventlet
import eventlet.wsgi

from bench.lean_rpc import LeanRpc

ROOT = Path(__file__).resolve().parents[1]
Step = tuple[str, int]  # (folio, stream version)


class Arrivals(dict[Step, tuple[float, float]]):
    """(folio, version) -> (when it arrived, the event's time): each step's first arrival."""

    def note(self, folio: str, version: int, arrived: float, event_time: str) -> None:
        self.setdefault((folio, version), (arrived, datetime.fromisoformat(event_time)
                                           .timestamp()))


class StepDriver(LeanRpc):
    """Runs a cycle of commands on each report, one step of a report at a time (the next one
    waits for tracking's answer), starting steps at an offered rate across the reports."""

    def __init__(self, amqp_uri: str, cycle: list[tuple[str, dict[str, str], dict[str, Any]]]
                 ) -> None:
        super().__init__(amqp_uri, {})
        self.cycle = cycle
        self.position: dict[str, int] = {}
        self.answered_at: dict[str, float] = {}

    def _on_reply(self, message: amqp.Message) -> None:
        self.answered_at[message.properties["correlation_id"]] = time.time()
        super()._on_reply(message)

    def drive(self, folios: list[str], rate: float, duration: float
              ) -> tuple[dict[Step, float], float]:
        """Each step answered, (folio, version) -> when tracking's answer came, and the rate
        achieved (steps answered per second, from the first sent to the last answered)."""
        total = int(rate * duration)
        ready = deque(folios)
        in_flight: dict[str, str] = {}
        answered: dict[Step, float] = {}
        sent = 0
        began = time.perf_counter()
        while sent < total or in_flight:
            while sent < total and ready and began + sent / rate <= time.perf_counter():
                folio = ready.popleft()
                n = self.position.get(folio, 0)
                self.position[folio] = n + 1
                name, headers, payload = self.cycle[n % len(self.cycle)]
                self.headers = headers
                in_flight[self.send("tracking", "run_command", name, folio,
                                    {**payload, "step_id": str(uuid.uuid4())})] = folio
                sent += 1
            wait = began + sent / rate - time.perf_counter() if sent < total and ready else 0.05
            with contextlib.suppress(TimeoutError):  # nothing came back: time to send more
                self.conn.drain_events(timeout=max(0.0005, wait))
            for correlation_id in [c for c in self.results if c in in_flight]:
                reply = self.results.pop(correlation_id)
                folio = in_flight.pop(correlation_id)
                if reply["error"]:
                    raise SystemExit(f"a step on {folio} failed: {reply['error']}")
                answered[(folio, reply["result"]["version"])] = self.answered_at.pop(
                    correlation_id)
                ready.append(folio)
        return answered, len(answered) / (time.perf_counter() - began)


class LiveStreams:
    """One `GET /live/{folio}` per folio, read as it comes."""

    def __init__(self, port: int, folios: list[str]) -> None:
        self.port, self.folios = port, set(folios)
        self.arrivals = Arrivals()
        self.connections: list[http.client.HTTPConnection] = []
        self.threads = [eventlet.spawn(self._read, folio) for folio in folios]

    def _read(self, folio: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        self.connections.append(connection)
        connection.request("GET", f"/live/{folio}", headers={"Accept": "text/event-stream"})
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"/live/{folio} answered {response.status}")
        with contextlib.suppress(OSError, http.client.HTTPException):  # the service went away
            self._frames(response)

    def _frames(self, response: http.client.HTTPResponse) -> None:
        buffer = b""
        while chunk := response.read1(65536):
            arrived = time.time()
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        view = json.loads(line[6:])
                        self.arrivals.note(view["folio"], view["version"], arrived, view["time"])

    def close(self) -> None:
        for thread in self.threads:
            thread.kill()
        for connection in self.connections:
            connection.close()


class WebhookReceiver:
    """A green HTTP server taking each webhook POST: when it came, by webhook-id; 204."""

    def __init__(self) -> None:
        self.socket = eventlet.listen(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/hook"
        self.arrivals = Arrivals()
        self.by_id: dict[str, float] = {}
        self.thread = eventlet.spawn(eventlet.wsgi.server, self.socket, self._app,
                                     log_output=False)

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        arrived = time.time()
        event = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        self.by_id.setdefault(environ.get("HTTP_WEBHOOK_ID", ""), arrived)
        self.arrivals.note(event["subject"], event["data"]["version"], arrived, event["time"])
        start_response("204 No Content", [])
        return [b""]

    def close(self) -> None:
        self.thread.kill()
        self.socket.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink(port: int, maildir: Path) -> subprocess.Popen[bytes]:
    """deploy/local/smtp_sink.py in a process group of its own, once it listens."""
    sink = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "local" / "smtp_sink.py"),
                             "--host", "127.0.0.1", "--port", str(port), "--maildir",
                             str(maildir)], stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while sink.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return sink
        except OSError:
            time.sleep(0.05)
    stop_group(sink)
    raise SystemExit("the SMTP sink did not start")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_seconds() -> tuple[float, float]:
    """Seconds the cores have been busy, and all their seconds (/proc/stat)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def group_seconds(command: str) -> dict[int, float]:
    """CPU seconds so far of every process running `command` (by its name in /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text[text.index("(") + 1:text.rindex(")")] == command:
                found[int(stat.parent.name)] = cpu_seconds(int(stat.parent.name))
    return found


class Cpu:
    """CPU used between `mark()` and `report()`, as % of one core: by each watched process, by
    all of PostgreSQL and RabbitMQ (whoever they work for), and by the whole machine."""

    GROUPS = {"postgres": "postgres", "rabbitmq": "beam.smp"}

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.mark()

    def mark(self) -> None:
        self.began = time.monotonic()
        self.used = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.groups = {name: group_seconds(command) for name, command in self.GROUPS.items()}
        self.machine = machine_seconds()

    def report(self) -> str:
        wall = time.monotonic() - self.began
        used = {name: cpu_seconds(pid) - self.used[name] for name, pid in self.pids.items()}
        for name, command in self.GROUPS.items():
            before = self.groups[name]
            used[name] = sum(now - before.get(pid, 0.0)
                             for pid, now in group_seconds(command).items())
        busy, total = (now - then for now, then in zip(machine_seconds(), self.machine,
                                                        strict=True))
        return "  ".join([f"{name} {100 * seconds / wall:.0f}%" for name, seconds in used.items()]
                         + [f"machine {100 * busy / total:.0f}% of {os.cpu_count()} cores"])
