"""A running system for end-to-end tests: tracking, intake and crews as real `nameko run`
processes, each on a PostgreSQL schema of its own (dropped at stop) and a RabbitMQ virtual host of
the stack's own, so that RPC queues (named after services) never reach another test's or `make
run`'s processes.

PostgreSQL is the default because it refuses what SQLite stores (U+0000 in text, for one): bad
input must be caught at the edge, not by the database of the moment. `Stack(..., store="sqlite")`
or EXPEDIENTE_E2E_STORE=sqlite runs the stack on SQLite files, as `make run` does."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.conftest import PG, unique
from tests.support import ServiceProcess

RABBITMQCTL = "rabbitmqctl"
SERVICES = ("tracking", "intake", "crews")


def create_vhost() -> str:
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    subprocess.run([RABBITMQCTL, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return vhost


def delete_vhost(vhost: str) -> None:
    subprocess.run([RABBITMQCTL, "-q", "delete_vhost", vhost], check=False, capture_output=True)


def pg_connect() -> Any:
    import psycopg

    return psycopg.connect(dbname=PG["POSTGRES_DBNAME"], host=PG["POSTGRES_HOST"],
                           port=PG["POSTGRES_PORT"], user=PG["POSTGRES_USER"],
                           password=PG["POSTGRES_PASSWORD"] or None, autocommit=True)


class Stack:
    """Tracking, intake and crews, started in order; `stop()` ends them, drops their PostgreSQL
    schemas and removes the vhost."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None,
                 store: str | None = None) -> None:
        self.store = store or os.environ.get("EXPEDIENTE_E2E_STORE", "postgres")
        if self.store not in ("postgres", "sqlite"):
            raise ValueError(f"store is postgres or sqlite, not {self.store!r}")
        self.vhost = create_vhost()
        self.amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.workdir = workdir
        self.schemas = {name: unique(f"e2e_{name}") for name in SERVICES}
        self.env = {
            "AMQP_URI": self.amqp_uri, **self._store_env(),
            "INTAKE_PHOTO_DIR": str(workdir / "photos"),
            "CREWS_PHOTO_DIR": str(workdir / "crews-photos"),
            "RELAY_POLL_INTERVAL": "0.2", "EXPEDIENTE_ENV": "development",
            **(extra_env or {}),
        }
        if self.store == "postgres":
            with pg_connect() as conn:
                for schema in self.schemas.values():
                    conn.execute(f"CREATE SCHEMA {schema}")
        self.tracking = ServiceProcess("tracking", self.env)
        self.intake = ServiceProcess("intake", self.env)
        self.crews = ServiceProcess("crews", self.env)
        self.intake.env["STATUS_PAGE_URL"] = f"{self.tracking.url}/seguimiento"
        self.intake.env["INTAKE_PUBLIC_URL"] = self.intake.url
        self.tracking.env["PORTAL_URL"] = self.intake.url
        self.crews.env["CREWS_PUBLIC_URL"] = self.crews.url
        # Photos the test intake stores are served from its own /media/: both services trust
        # them (plain http here); everything else a client names must be https. Tracking also
        # trusts the field's photos, which crews keeps and serves from its /media/.
        media = (extra_env or {}).get("TRUSTED_MEDIA_URLS", f"{self.intake.url}/media/")
        self.intake.env["TRUSTED_MEDIA_URLS"] = media
        self.tracking.env["TRUSTED_MEDIA_URLS"] = f"{media},{self.crews.url}/media/"

    def _store_env(self) -> dict[str, str]:
        if self.store == "sqlite":
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    **{f"{name.upper()}_SQLITE_DBNAME": str(self.workdir / f"{name}.sqlite")
                       for name in SERVICES}}
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": PG["POSTGRES_HOST"], "POSTGRES_PORT": PG["POSTGRES_PORT"],
            "POSTGRES_USER": PG["POSTGRES_USER"], "POSTGRES_PASSWORD": PG["POSTGRES_PASSWORD"],
            **{f"{name.upper()}_POSTGRES_DBNAME": PG["POSTGRES_DBNAME"] for name in SERVICES},
            **{f"{name.upper()}_POSTGRES_SCHEMA": schema for name, schema in self.schemas.items()},
        }

    def start(self) -> Stack:
        try:
            self.tracking.start()
            self.intake.start()
            self.crews.start()
        except BaseException:
            self.stop()
            raise
        return self

    def restart_intake(self) -> None:
        self.intake.stop()
        self.intake.start()

    def query(self, service: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple]:
        """Rows of a read-only query on a service's own store (`?` placeholders), whichever
        database the stack runs on: what tests check writes by."""
        if self.store == "sqlite":
            path = self.workdir / f"{service}.sqlite"
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
                return db.execute(sql, params).fetchall()
        with pg_connect() as conn:
            conn.execute(f"SET search_path TO {self.schemas[service]}")
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def tables(self, service: str) -> set[str]:
        if self.store == "sqlite":
            rows = self.query(service, "SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.query(service, "SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = ?", (self.schemas[service],))
        return {name for (name,) in rows}

    def stop(self) -> None:
        self.crews.stop()
        self.intake.stop()
        self.tracking.stop()
        delete_vhost(self.vhost)
        if self.store == "postgres":
            with pg_connect() as conn:
                for schema in self.schemas.values():
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
