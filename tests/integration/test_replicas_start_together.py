"""Replicas of a Deployment start together on a new PostgreSQL database: every one of them comes
up, though all try to create the same tables at once (PostgreSQL's CREATE TABLE IF NOT EXISTS
fails against a concurrent one; the stores take a schema lock first).

Each replica is a process of its own building what a service builds at start-up: tracking's
event store, folio counters, views and the followers' positions; intake's tables; a consumer's
table of processed events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 6
START_UP = """
import eventlet
eventlet.monkey_patch()
import shared.chassis
from services.intake.store import IntakeStore
from services.tracking.write.application import TrackingApplication
from services.tracking.domainmodel import Actor
from services.tracking.read.projection import ReportProjector
from shared.chassis.consumer import _ensure_processed_table
from services.tracking.write.outgoing import CloudEventConverter
from shared.chassis.outbox import Publisher, relay_follower
from shared.chassis.sqlstore import SqlStore

app = TrackingApplication()
ReportProjector(app)
relay_follower(app, CloudEventConverter(app), Publisher("amqp://127.0.0.1//", "unused"))
IntakeStore(SqlStore.from_env())
_ensure_processed_table(app.sql)
app.open_report(service_code="bache", service_name="Bache", department="obras",
                description="arranque", location={"lat": 20.59, "long": -100.39},
                actor=Actor(id="arranque", role="system", channel="web"))
print("up")
"""


def test_replicas_starting_together_on_a_new_database_all_come_up(pg_env):
    env = {**os.environ, **pg_env, "PYTHONPATH": str(ROOT), "PSYCOPG_WAIT_FUNC": "wait_select"}
    replicas = [subprocess.Popen([sys.executable, "-c", START_UP], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(REPLICAS)]
    outcomes = [replica.communicate(timeout=120) for replica in replicas]

    failed = [err.strip().splitlines()[-3:]
              for replica, (_, err) in zip(replicas, outcomes, strict=True)
              if replica.returncode != 0]
    assert failed == []
    assert [out.strip() for out, _ in outcomes] == ["up"] * REPLICAS
