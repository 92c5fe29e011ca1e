"""The eventsourced runtime's settings: one helper turns a service's config into its store's
environment, and start-up waits out a database or broker that is away, but not a mistake."""

from __future__ import annotations

import logging

import psycopg
import pytest

from shared.chassis import transient
from shared.chassis.runtime import app_env, setting


def test_the_store_settings_of_a_config_become_the_applications_environment():
    config = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_PORT": 5432,
              "POSTGRES_PRE_PING": True, "POSTGRES_SCHEMA": "", "POSTGRES_PASSWORD": None,
              "FOLIO_PREFIX": "QRO", "JWT_SECRET": "not the store's business"}
    env = app_env(config, keys=("FOLIO_PREFIX",))
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_PORT": "5432",
        "POSTGRES_PRE_PING": "True", "POSTGRES_PASSWORD": "", "FOLIO_PREFIX": "QRO",
        # On PostgreSQL the chassis' recorder: readers never pass over an id in flight.
        "APPLICATION_RECORDER_TOPIC": "shared.chassis.esrecorder:LogRecorder",
    }


def test_the_embedded_store_keeps_eventsourcings_own_recorder():
    env = app_env({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": "var/t.db"})
    assert env == {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": "var/t.db",
                   "POSTGRES_PASSWORD": ""}


def test_a_runtime_setting_left_empty_takes_its_one_default():
    assert setting({"READ_WAIT_SECONDS": ""}, "READ_WAIT_SECONDS") == 2.0
    assert setting({"READ_WAIT_SECONDS": "0.5"}, "READ_WAIT_SECONDS") == "0.5"


def test_start_up_waits_while_the_database_is_away_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(transient.time, "sleep", lambda seconds: None)
    attempts = []

    def connect():
        attempts.append(1)
        if len(attempts) < 3:
            raise psycopg.OperationalError("connection refused")
        return "connected"

    with caplog.at_level(logging.WARNING):
        assert transient.until_ready(connect, "tracking: the database") == "connected"
    assert len(attempts) == 3
    assert "tracking: the database not ready" in caplog.text


def test_start_up_does_not_wait_out_a_mistake(monkeypatch):
    monkeypatch.setattr(transient.time, "sleep", lambda seconds: None)

    def misconfigured():
        raise psycopg.ProgrammingError('relation "tracking_events" does not exist')

    with pytest.raises(psycopg.ProgrammingError):
        transient.until_ready(misconfigured, "tracking: the event store")


@pytest.mark.parametrize("error, passes", [
    (psycopg.errors.DeadlockDetected("deadlock detected"), True),
    (psycopg.OperationalError("server closed the connection"), True),
    (ConnectionRefusedError(), True),
    (transient.Transient("RabbitMQ refused a publication"), True),
    (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), False),
    (OverflowError("date value out of range"), False),
    (ValueError("no CloudEvent form"), False),
])
def test_which_failures_pass_on_their_own(error, passes):
    assert transient.is_transient(error) is passes
