"""Test helpers: a CloudEvents listener on RabbitMQ, service processes, bounded waiting."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import eventlet
import kombu

from shared.chassis import launcher
from shared.contracts.cloudevents import CloudEvent

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> object:
    """Poll until `condition()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        eventlet.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def deliver_in_batches(consume: Callable[..., Any], service: Any, deliveries: Sequence[CloudEvent],
                       consumer: str, seed: int) -> None:
    """Hand a batching consumer's method `deliveries` as its entrypoint would under load: in
    batches of 1 to 8, each batch's leftovers (past a gap) then applied one at a time."""
    pick = random.Random(seed)
    left = list(deliveries)
    while left:
        size = pick.randint(1, 8)
        batch, left = left[:size], left[size:]
        outcome = consume(service, batch, consumer, batch=True)
        assert sorted(outcome.applied + outcome.duplicates + outcome.leftover) == list(
            range(len(batch)))
        for index in outcome.leftover:
            consume(service, batch[index], consumer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bearer(role: str, **claims: str) -> dict[str, str]:
    """nameko context data that carries a development token for `role`."""
    from shared.chassis.auth import mint_token

    return {"authorization": f"Bearer {mint_token(f'test-{role}', (role,), **claims)}"}


class EventListener:
    """A durable queue bound to the events exchange, consumed in a green thread that reconnects
    after a broker restart. Collects every CloudEvent received (duplicates included)."""

    def __init__(self, amqp_uri: str, exchange: str, queue: str, pattern: str = "#") -> None:
        self.amqp_uri = amqp_uri
        self.exchange = kombu.Exchange(exchange, type="topic", durable=True)
        self.queue = kombu.Queue(queue, self.exchange, routing_key=pattern, durable=True)
        self.received: list[CloudEvent] = []
        self.messages: list[kombu.Message] = []
        self._stop = threading.Event()
        with kombu.Connection(amqp_uri) as conn:
            self.queue(conn.default_channel).declare()
        self._thread = eventlet.spawn(self._run)

    def _on_message(self, body: bytes, message: kombu.Message) -> None:
        self.received.append(CloudEvent.from_json(message.body))
        self.messages.append(message)
        message.ack()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with kombu.Connection(self.amqp_uri, connect_timeout=2) as conn, \
                        conn.Consumer([self.queue], callbacks=[self._on_message],
                                      accept=["application/cloudevents+json", "json"]):
                    while not self._stop.is_set():
                        try:
                            conn.drain_events(timeout=0.2)
                        except TimeoutError:
                            continue
            except Exception:  # the broker went away: try again shortly
                eventlet.sleep(0.3)

    def ids(self) -> list[str]:
        return [event.id for event in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.wait()
        with kombu.Connection(self.amqp_uri) as conn:
            channel = conn.default_channel
            self.queue(channel).delete()
            self.exchange(channel).delete()


class ServiceProcess(launcher.ServiceProcess):
    """A real `nameko run` of one service on a free port, in development mode (config.yaml's
    development secrets are accepted), in its own process group so it can be killed -9;
    `start()` returns once it answers /healthz."""

    def __init__(self, service: str, env: dict[str, str]) -> None:
        super().__init__(service, {"EXPEDIENTE_ENV": "development", **env}, port=free_port())

    def start(self) -> ServiceProcess:
        super().start()
        self.wait_healthy(timeout=60)
        return self


LOCAL = ROOT / "deploy" / "local"


class LocalServer:
    """One deploy/local/<script> process (the SMTP sink, the fake provider, the push service, a
    webhook receiver) on a free port, or `port`, its output in `folder/<script>.log`."""

    def __init__(self, folder: Path, script: str, *options: str, port: int | None = None
                 ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{Path(script).stem}.log"
        self.command = [sys.executable, str(LOCAL / script), "--host", "127.0.0.1",
                        "--port", str(self.port), *options]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalServer:
        """Start it and return once it listens (fail the test if it exits or never does)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command[1]} exited: {self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{self.command[1]} did not listen on {self.port} within 15 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
