"""A tracking replica that starts while PostgreSQL is away (restarting, unreachable) waits for it,
saying so every few seconds, and comes up once it answers: it never exits at start-up."""

from __future__ import annotations

import logging
import socket

import eventlet
import pytest
from nameko.containers import ServiceContainer

from services.tracking.dependencies import TrackingRuntime
from services.tracking.domainmodel import Actor
from services.tracking.service import TrackingService
from shared.chassis.config import load_config
from tests.stack import create_vhost, delete_vhost
from tests.support import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


class DatabaseDoor:
    """A TCP door in front of PostgreSQL: shut (connections refused) until `open()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.threads: list = []

    def open(self) -> None:
        server = eventlet.listen(("127.0.0.1", self.port))
        self.threads.append(eventlet.spawn(self._serve, server))

    def _serve(self, server: socket.socket) -> None:
        while True:
            client, _ = server.accept()
            upstream = eventlet.connect(self.target)
            self.threads += [eventlet.spawn(self._pipe, client, upstream),
                             eventlet.spawn(self._pipe, upstream, client)]

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # the other direction may still be talking
        except (OSError, EOFError):  # one side went away: so does the connection
            pass

    def close(self) -> None:
        for thread in self.threads:
            thread.kill()


def test_a_replica_waits_for_postgresql_and_comes_up_when_it_answers(pg_env, caplog):
    caplog.set_level(logging.WARNING, logger="shared.chassis.transient")
    door = DatabaseDoor(pg_env["POSTGRES_HOST"], int(pg_env["POSTGRES_PORT"]))
    vhost = create_vhost()
    config = load_config(
        ROOT / "services" / "tracking" / "config.yaml",
        **{**pg_env, "POSTGRES_PORT": str(door.port)},
        AMQP_URI=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}")
    container = ServiceContainer(TrackingService, config)
    starting = eventlet.spawn(container.start)
    try:
        wait_for(lambda: "the database not ready" in caplog.text, timeout=30,
                 message="the replica to say it waits")
        assert not starting.dead  # still waiting, not exited
        door.open()
        starting.wait()
        [runtime] = [d for d in container.dependencies if isinstance(d, TrackingRuntime)]
        opened = runtime.app.open_report(
            service_code="bache", service_name="Bache", department="obras", description="Bache",
            location={"lat": 20.59, "long": -100.39}, actor=Actor("op", "operator", "web"))
        assert opened.folio
    finally:
        starting.kill()
        container.stop()
        door.close()
        delete_vhost(vhost)
