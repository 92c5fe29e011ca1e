"""Nothing is passed over: two replicas write reports at once on PostgreSQL (their notification
ids commit out of order, and version conflicts roll some back for good) while the relay publishes
and the projector follows; afterwards every stored event was published and is in the views.

`FOLLOWER_BARRIER=off` runs the same test with followers that trust what they see (a plain tail
reader, as before the barrier): it fails, passing over ids a slower transaction committed later.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter, event_id
from shared.chassis.esrecorder import VisibleIsFinal
from shared.chassis.follower import Handler, LogFollower
from shared.chassis.leadership import leadership_for
from shared.chassis.outbox import Publisher, relay_follower
from shared.chassis.runtime import app_env
from shared.chassis.sqlstore import SqliteStore
from tests.conftest import unique
from tests.integration.bus import counter
from tests.support import EventListener, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

WRITING_SECONDS = 15
THREADS_PER_REPLICA = 4
TAILS = 2
BARRIER = os.environ.get("FOLLOWER_BARRIER", "on") != "off"
ROOT = Path(__file__).resolve().parents[2]


# A replica writing for a while: operators open reports, supervisors work on recent ones (theirs
# and the other replica's, so writers race on a report now and then: a version conflict rolls
# back ids already drawn). Its own process, as a replica is: the writers truly run at once.
REPLICA = """
import os, random, sys, threading, time
import shared.chassis
from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from shared.chassis.runtime import app_env

OPERATOR = Actor("op-070", "operator", "phone_070")
SUPERVISOR = Actor("sup-obras", "supervisor", "staff")
app = TrackingApplication(env=app_env(os.environ))  # the environment names the store
until = time.monotonic() + float(sys.argv[1])
folios = []

def write(seed):
    rng, n = random.Random(seed), 0
    while time.monotonic() < until:
        folios.append(app.open_report(
            service_code="bache", service_name="Bache", department="obras_publicas",
            description=f"Bache {n}", location={"lat": 20.59, "long": -100.39},
            actor=OPERATOR).folio)
        n += 1
        folio = rng.choice(folios[-20:])
        try:
            if rng.random() < 0.5:
                app.assign(folio, SUPERVISOR, crew_id=f"C-{rng.randint(1, 9)}")
            else:
                app.add_comment(folio, SUPERVISOR, text=f"nota {n}", visibility="internal")
        except Exception as exc:  # too busy (conflicts on both replicas): fine here
            if type(exc).__name__ != "RecordConflictError":
                raise

threads = [threading.Thread(target=write, args=(seed,)) for seed in range(int(sys.argv[2]))]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
app.close()
print(len(folios))
"""


class Tally(Handler):
    """Notes the ids it is given."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def handle(self, tx, notifications) -> None:
        self.seen.update(n.id for n in notifications)


def hold_inserts_a_moment(app: TrackingApplication) -> None:
    """A database under load: each insert holds its ids up to 4 ms before it commits (as a slow
    disk or a checkpoint would), so ids drawn later often commit first."""
    schema, table = app.recorder.datastore.schema, app.recorder.events_table_name
    with app.sql.transaction() as tx:
        tx.execute(f"CREATE FUNCTION {schema}.busy() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN PERFORM pg_sleep(random() * 0.004); RETURN NULL; END $$")
        tx.execute(f"CREATE TRIGGER busy AFTER INSERT ON {schema}.{table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.busy()")


def start_replica(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", REPLICA, str(WRITING_SECONDS), str(THREADS_PER_REPLICA)],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_every_event_of_two_busy_replicas_is_published_and_projected(pg_env, amqp_uri,
                                                                      exchange_name):
    # As the service runs it (config.yaml): one round trip per insert, with no table lock, so
    # ids commit out of order.
    env = app_env({**pg_env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"})
    leader = TrackingApplication(env=env)  # creates the tables before the replicas start
    hold_inserts_a_moment(leader)
    trusting = {} if BARRIER else {"finality": VisibleIsFinal(leader.recorder)}
    projector = ReportProjector(leader, poll_interval=0.05, coalesce=0, **trusting)
    relay = relay_follower(leader, CloudEventConverter(leader),
                           Publisher(amqp_uri, exchange_name), poll_interval=0.05,
                           coalesce=0, **trusting)
    # And a reader that looks all the time (its position in memory: a round is one query), so
    # that the moments when a higher id is visible before a lower one are met.
    tails = [Tally() for _ in range(TAILS)]
    followers = [projector.follower, relay, *(
        LogFollower(f"tail{i}", leader, tail, store=SqliteStore(":memory:"),
                    poll_interval=0.0005, **trusting) for i, tail in enumerate(tails))]
    # The leader hears every replica's saves through LISTEN, as in the service.
    hearing = leadership_for(leader.sql, "test", channel=leader.recorder.channel_name,
                             on_wake=lambda: [f.wake.set() for f in followers])
    listener = EventListener(amqp_uri, exchange_name, unique("test.listener"))
    loops = [threading.Thread(target=task, daemon=True)
             for task in (hearing.run, *(f.run for f in followers))]
    before = counter("expediente_relay_events_published_total", source="tracking")
    try:
        for loop in loops:
            loop.start()
        replicas = [start_replica(env) for _ in range(2)]
        outcomes = [replica.communicate(timeout=WRITING_SECONDS + 120) for replica in replicas]
        assert [replica.returncode for replica in replicas] == [0, 0], outcomes
        stored = leader.recorder.max_notification_id()
        for follower in followers:
            assert follower.wait_for(stored, timeout=60)

        log = leader.recorder.select_notifications(1, 10**7)
        expected = {event_id(n.originator_id, n.originator_version) for n in log}
        published = counter("expediente_relay_events_published_total", source="tracking") - before
        wait_for(lambda: len(listener.received) >= published, timeout=30,
                 message="every event RabbitMQ confirmed, delivered")
        with leader.sql.transaction() as tx:
            views = dict(tx.execute("SELECT report_id, version FROM report_views").fetchall())
        parked = [failure for follower in followers for failure in follower.failures()]
    finally:
        hearing.stop()
        for follower in followers:
            follower.stop()
        for loop in loops:
            loop.join(10)
        listener.close()
        leader.close()

    streams: dict[str, int] = {}
    for n in log:
        key = str(n.originator_id)
        streams[key] = max(streams.get(key, 0), n.originator_version)
    opened = sum(int(out.strip()) for out, _ in outcomes)
    received = set(listener.ids())
    assert len(streams) == opened > 100
    passed_over = {
        "relay": sorted(n.id for n in log
                        if event_id(n.originator_id, n.originator_version) not in received),
        "views": sorted(report for report, version in streams.items()
                        if views.get(report) != version),
        "tail": sorted({n.id for n in log} - set.intersection(*(t.seen for t in tails))),
    }
    assert passed_over == {"relay": [], "views": [], "tail": []}, {
        follower: len(ids) for follower, ids in passed_over.items()}
    assert received == expected  # nothing published that was not stored, either
    assert parked == []
    barriers = {f.name: counter("expediente_follower_barriers_total", follower=f.name)
                for f in followers}
    print(f"\n{len(log)} events of {len(streams)} reports, ids drawn {log[-1].id}; "
          f"barriers {barriers}")
