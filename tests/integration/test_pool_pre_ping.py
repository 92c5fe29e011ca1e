"""Pre-ping, once per idle spell: a pool pings a connection before lending it only when the
connection has not been lent for a while (sqlstore.ping_if_idle). A connection the server closed
while it sat idle is then found dead and replaced, so the caller never sees it; a connection lent
moments ago goes out without a ping, so a busy service pays no extra round trip per query. The
same holds for our stores' pools and for the event store's (POSTGRES_PRE_PING)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from shared.chassis import sqlstore
from shared.chassis.runtime import app_env
from shared.chassis.sqlstore import SqlStore, ping_if_idle

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pings(monkeypatch) -> list[int]:
    """Every ping a pool makes, counted."""
    made: list[int] = []
    real = ConnectionPool.check_connection

    def counted(conn) -> None:
        made.append(conn.info.backend_pid)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return made


def terminate_others(pg_env, schema_user_pids: set[int]) -> None:
    with psycopg.connect(dbname=pg_env["POSTGRES_DBNAME"], host=pg_env["POSTGRES_HOST"],
                         port=pg_env["POSTGRES_PORT"], user=pg_env["POSTGRES_USER"],
                         autocommit=True) as conn:
        for pid in schema_user_pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def backend_pids(store: SqlStore, times: int = 1) -> set[int]:
    return {store.run("SELECT pg_backend_pid()")[0][0][0] for _ in range(times)}


def test_a_busy_connection_is_not_pinged_again(pg_env, pings):
    store = SqlStore.from_env(pg_env, name="pings")
    try:
        for _ in range(20):
            with store.transaction() as tx:
                tx.execute("SELECT 1")
        store.run("SELECT 1")
        assert pings and len(pings) == len(set(pings))  # each connection at its first lending
    finally:
        store.close()


def test_a_connection_closed_while_idle_is_replaced_before_anyone_uses_it(pg_env, pings,
                                                                          monkeypatch):
    store = SqlStore.from_env(pg_env, name="pings")
    try:
        dead = backend_pids(store)
        terminate_others(pg_env, dead)
        monkeypatch.setattr(sqlstore, "PING_AFTER_IDLE", 0.0)  # every connection idle "a while"
        with store.transaction() as tx:  # the ping finds the dead one; the pool lends another
            assert tx.execute("SELECT pg_backend_pid()").fetchone()[0] not in dead
        assert set(pings) & dead
    finally:
        store.close()


def test_the_event_store_pool_pings_the_same_way(pg_env, pings, monkeypatch):
    app = TrackingApplication(env=app_env({**pg_env, "POSTGRES_PRE_PING": "y"}))
    actor = Actor("op", "operator", "web")
    try:
        assert app.recorder.datastore.pool._check is ping_if_idle
        folio = app.open_report(service_code="bache", service_name="Bache", department="obras",
                                description="Bache", location={"lat": 20.59, "long": -100.39},
                                actor=actor).folio
        for _ in range(30):  # every connection the pool holds is lent (and pinged) once
            app.get_report(folio)
        before = len(pings)
        for _ in range(30):
            app.get_report(folio)
        assert len(pings) == before  # not a ping per load

        with app.recorder.datastore.get_connection() as conn:
            dead = {conn.info.backend_pid}
        terminate_others(pg_env, dead)
        monkeypatch.setattr(sqlstore, "PING_AFTER_IDLE", 0.0)
        assert app.get_report(folio).folio == folio  # served by a live connection
    finally:
        app.close()


def test_without_pre_ping_the_event_store_keeps_the_library_s_pool_as_it_is(pg_env):
    app = TrackingApplication(env=app_env({**pg_env, "POSTGRES_PRE_PING": "n"}))
    try:
        assert app.recorder.datastore.pool._check is None
    finally:
        app.close()
