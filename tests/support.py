"""Test helpers: a CloudEvents listener on RabbitMQ, service processes, bounded waiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import eventlet
import kombu

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


class ServiceProcess:
    """A real `nameko run` of one service, in its own process group so it can be killed -9."""

    def __init__(self, service: str, env: dict[str, str]) -> None:
        self.service = service
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PSYCOPG_WAIT_FUNC": "wait_select",
            "EXPEDIENTE_ENV": "development",  # config.yaml's development secrets are accepted
            f"{service.upper()}_HTTP_ADDRESS": f"127.0.0.1:{self.port}",
            **env,
        }
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"{service}-", suffix=".log")[1])

    def start(self) -> ServiceProcess:
        config = ROOT / "services" / self.service / "config.yaml"
        nameko = Path(sys.executable).parent / "nameko"
        self.process = subprocess.Popen(
            [str(nameko), "run", "--config", str(config), f"services.{self.service}.service"],
            cwd=ROOT, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"),  # noqa: SIM115
        )
        wait_for(self._healthy, timeout=60, interval=0.2, message=f"{self.service} to start")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.service} exited: {self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
