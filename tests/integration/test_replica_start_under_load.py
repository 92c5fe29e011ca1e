"""A replica starting while the leader projects under load comes up, again and again: making its
tables (which exist) takes no lock that the leader's batches need, so nobody deadlocks. (Before,
the replica's CREATE INDEX IF NOT EXISTS held a SHARE lock on the views while it waited for the
position row a batch had updated, and the batch waited for the views: DeadlockDetected.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.tracking.domainmodel import Actor
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from shared.chassis.runtime import app_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
STARTING_SECONDS = 12
OPERATOR = Actor("op-070", "operator", "phone_070")
SUPERVISOR = Actor("sup-obras", "supervisor", "staff")
# A replica process starting again and again: what tracking builds at start-up each time.
REPLICA = """
import os, sys, time
import shared.chassis
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.chassis.outbox import Publisher, relay_follower
from shared.chassis.runtime import app_env

until, starts = time.monotonic() + float(sys.argv[1]), 0
while time.monotonic() < until:
    app = TrackingApplication(env=app_env(os.environ))
    try:
        ReportProjector(app)
        relay_follower(app, CloudEventConverter(app), Publisher(sys.argv[2], sys.argv[3]))
    finally:
        app.close()
    starts += 1
print(starts)
"""


def keep_writing(app: TrackingApplication, stop: threading.Event, errors: list) -> None:
    try:
        while not stop.is_set():
            folio = app.open_report(
                service_code="bache", service_name="Bache", department="obras",
                description="Bache", location={"lat": 20.59, "long": -100.39},
                actor=OPERATOR).folio
            app.assign(folio, SUPERVISOR, crew_id="C-01")
    except Exception as exc:
        errors.append(exc)


def test_a_replica_starting_while_the_leader_projects_under_load_comes_up(
        pg_env, amqp_uri, exchange_name, caplog):
    env = app_env({**pg_env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"})
    leader = TrackingApplication(env=env)
    projector = ReportProjector(leader, poll_interval=0.01)  # a batch every few milliseconds
    stop, errors = threading.Event(), []
    following = threading.Thread(target=projector.follower.run, daemon=True)
    writers = [threading.Thread(target=keep_writing, args=(leader, stop, errors))
               for _ in range(4)]
    try:
        for thread in (following, *writers):
            thread.start()
        replica = subprocess.run(
            [sys.executable, "-c", REPLICA, str(STARTING_SECONDS), amqp_uri, exchange_name],
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True,
            text=True, timeout=STARTING_SECONDS + 60)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
        caught_up = projector.follower.wait_for(leader.recorder.max_notification_id(), 30)
        projector.follower.stop()
        following.join(10)
        leader.close()
    assert replica.returncode == 0, replica.stderr[-2000:]
    assert int(replica.stdout.split()[-1]) > 5  # it came up that many times
    assert errors == [] and caught_up
    assert "Deadlock" not in caplog.text  # nor did the leader's batches meet one
