"""The event store's side of the barrier on PostgreSQL: every insert holds the log's lock shared,
an existing database gets that insert function at the next start, and a barrier waits for an
insert in flight before it says which ids are final."""

from __future__ import annotations

import eventlet
import psycopg
import pytest

from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from shared.chassis.esrecorder import LogRecorder, finality_for
from shared.chassis.runtime import app_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def insert_function(pg_env) -> str:
    with psycopg.connect(dbname=pg_env["POSTGRES_DBNAME"], host=pg_env["POSTGRES_HOST"],
                         port=pg_env["POSTGRES_PORT"], user=pg_env["POSTGRES_USER"]) as conn:
        return conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'es_insert_events_uuid' "
                            "AND pronamespace = %s::regnamespace",
                            (pg_env["POSTGRES_SCHEMA"],)).fetchone()[0]


def open_pothole(app):
    return app.open_report(service_code="bache", service_name="Bache", department="obras",
                           description="Bache", location={"lat": 20.59, "long": -100.39},
                           actor=Actor("op", "operator", "web")).folio


def test_a_database_made_by_an_earlier_version_gets_the_locking_insert_at_the_next_start(pg_env):
    functions = {**pg_env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}
    TrackingApplication(env=functions).close()  # eventsourcing's own recorder, as before
    assert "pg_advisory_xact_lock_shared" not in insert_function(pg_env)

    app = TrackingApplication(env=app_env(functions))
    try:
        assert isinstance(app.recorder, LogRecorder)
        assert "pg_advisory_xact_lock_shared" in insert_function(pg_env)
        assert app.recorder.upgrade_insert_function() is False  # nothing left to do
        open_pothole(app)  # and it inserts
    finally:
        app.close()


def test_with_table_creation_off_the_runtime_upgrades_the_insert_function(pg_env):
    functions = {**pg_env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}
    TrackingApplication(env=functions).close()
    app = TrackingApplication(env=app_env({**functions, "CREATE_TABLE": "n"}))
    try:
        assert "pg_advisory_xact_lock_shared" not in insert_function(pg_env)
        assert app.recorder.upgrade_insert_function() is True
        assert "pg_advisory_xact_lock_shared" in insert_function(pg_env)
    finally:
        app.close()


def test_a_barrier_waits_for_the_insert_in_flight_then_vouches_for_its_id(pg_env):
    app = TrackingApplication(env=app_env({**pg_env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}))
    try:
        open_pothole(app)
        finality = finality_for(app.recorder)
        in_flight = app.sql.connect()
        in_flight.execute("BEGIN")  # an insert that has drawn its id and not committed yet
        in_flight.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", app.recorder.log_lock)
        barrier = eventlet.spawn(finality.barrier)
        eventlet.sleep(0.3)
        assert not barrier.dead  # it waits
        in_flight.execute("COMMIT")
        assert barrier.wait() == app.recorder.max_notification_id() == finality.final
        in_flight.close()
    finally:
        app.close()
