"""Fixtures shared by every tier: store environments (SQLite file, PostgreSQL schema), RabbitMQ."""

from __future__ import annotations

import os
import uuid

import pytest

AMQP_URI = os.environ.get("EXPEDIENTE_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//")
PG = {
    "POSTGRES_DBNAME": os.environ.get("EXPEDIENTE_TEST_PG_DBNAME", "test"),
    "POSTGRES_HOST": os.environ.get("EXPEDIENTE_TEST_PG_HOST", "127.0.0.1"),
    "POSTGRES_PORT": os.environ.get("EXPEDIENTE_TEST_PG_PORT", "5432"),
    "POSTGRES_USER": os.environ.get("EXPEDIENTE_TEST_PG_USER", "postgres"),
    "POSTGRES_PASSWORD": os.environ.get("EXPEDIENTE_TEST_PG_PASSWORD", ""),
}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_env(tmp_path) -> dict[str, str]:
    """An embedded store: one SQLite file, as `make run` uses."""
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "t.db")}


@pytest.fixture
def pg_env():
    """A PostgreSQL store in a schema of its own, dropped afterwards."""
    import psycopg

    schema = unique("t")
    conninfo = dict(dbname=PG["POSTGRES_DBNAME"], host=PG["POSTGRES_HOST"],
                    port=PG["POSTGRES_PORT"], user=PG["POSTGRES_USER"],
                    password=PG["POSTGRES_PASSWORD"] or None, autocommit=True)
    with psycopg.connect(**conninfo) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        **PG,
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_LOCK_TIMEOUT": "5",
    }
    with psycopg.connect(**conninfo) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request):
    """The same test against the embedded SQLite store and PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_env")
    return request.getfixturevalue("pg_env")


@pytest.fixture
def amqp_uri() -> str:
    return AMQP_URI


@pytest.fixture(scope="module")
def private_amqp_uri():
    """A RabbitMQ virtual host of the test module's own: service processes started on it never
    answer another test's RPC calls (queues are named after services), nor it theirs."""
    from tests.stack import create_vhost, delete_vhost

    vhost = create_vhost()
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    delete_vhost(vhost)


@pytest.fixture
def exchange_name() -> str:
    """A topic exchange of the test's own, so tests never hear each other's events."""
    return unique("test.events")
