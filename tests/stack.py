"""A running system for end-to-end tests: tracking and intake as real `nameko run` processes, on
SQLite files of their own and a RabbitMQ virtual host of their own, so that RPC queues (named
after services) never reach another test's or `make run`'s processes."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.support import ServiceProcess

RABBITMQCTL = "rabbitmqctl"


def create_vhost() -> str:
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    subprocess.run([RABBITMQCTL, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return vhost


def delete_vhost(vhost: str) -> None:
    subprocess.run([RABBITMQCTL, "-q", "delete_vhost", vhost], check=False, capture_output=True)


class Stack:
    """Tracking and intake, started in order; `stop()` ends both and removes the vhost."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.vhost = create_vhost()
        self.amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.workdir = workdir
        self.env = {
            "AMQP_URI": self.amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "TRACKING_SQLITE_DBNAME": str(workdir / "tracking.sqlite"),
            "INTAKE_SQLITE_DBNAME": str(workdir / "intake.sqlite"),
            "INTAKE_PHOTO_DIR": str(workdir / "photos"),
            "RELAY_POLL_INTERVAL": "0.2", "EXPEDIENTE_ENV": "development",
            **(extra_env or {}),
        }
        self.tracking = ServiceProcess("tracking", self.env)
        self.intake = ServiceProcess("intake", self.env)
        self.intake.env["STATUS_PAGE_URL"] = f"{self.tracking.url}/seguimiento"
        self.intake.env["INTAKE_PUBLIC_URL"] = self.intake.url

    def start(self) -> Stack:
        try:
            self.tracking.start()
            self.intake.start()
        except BaseException:
            self.stop()
            raise
        return self

    def restart_intake(self) -> None:
        self.intake.stop()
        self.intake.start()

    def stop(self) -> None:
        self.intake.stop()
        self.tracking.stop()
        delete_vhost(self.vhost)
