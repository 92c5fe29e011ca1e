"""Two tracking replicas on one PostgreSQL: one leads the relay; the other takes over if it dies."""

from __future__ import annotations

import contextlib

import eventlet
import eventlet.event
import psycopg
import pytest
import requests

from shared.chassis.auth import mint_token
from tests.conftest import unique
from tests.support import EventListener, ServiceProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
    "description": "Bache en la esquina", "location": {"lat": 20.59, "long": -100.39},
    "channel": "app",
}


def open_report(replica: ServiceProcess) -> str:
    token = mint_token("op", ("operator",))
    response = requests.post(f"{replica.url}/reports", json=POTHOLE,
                             headers={"Authorization": f"Bearer {token}"}, timeout=20)
    assert response.status_code == 201, response.text
    return response.json()["folio"]


def leads(replica: ServiceProcess) -> bool:
    return requests.get(f"{replica.url}/readyz", timeout=5).json()["leader"]


def test_one_replica_publishes_and_the_other_takes_over_when_it_is_killed(
        pg_env, private_amqp_uri, exchange_name):
    listener = EventListener(private_amqp_uri, exchange_name, unique("test.listener"))
    env = {"AMQP_URI": private_amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "TRACKING_POSTGRES_DBNAME": pg_env["POSTGRES_DBNAME"],
           "TRACKING_POSTGRES_SCHEMA": pg_env["POSTGRES_SCHEMA"],
           "POSTGRES_USER": pg_env["POSTGRES_USER"], "EVENTS_EXCHANGE": exchange_name,
           "LEADERSHIP_POLL_INTERVAL": "0.2", "RELAY_POLL_INTERVAL": "5"}
    first = ServiceProcess("tracking", env).start()
    second = ServiceProcess("tracking", env).start()
    try:
        wait_for(lambda: leads(first) or leads(second), message="a leader")
        assert leads(first) != leads(second)
        folios = [open_report(replica) for replica in (first, second) * 10]
        # The standby's saves reach the leader's relay through NOTIFY, not its 5 s poll.
        wait_for(lambda: {e.subject for e in listener.received} >= set(folios),
                 message="every report published by the leader")
        assert len(listener.ids()) == len(set(listener.ids())) == 20  # nobody published twice

        leader, standby = (first, second) if leads(first) else (second, first)
        leader.kill9()
        wait_for(lambda: leads(standby), message="the standby to take over")
        more = [open_report(standby) for _ in range(5)]
        wait_for(lambda: {e.subject for e in listener.received} >= set(folios + more),
                 message="reports opened after the failover")
    finally:
        first.stop()
        second.stop()
        listener.close()


def test_every_stored_event_is_published_when_the_leader_is_killed_under_load(
        pg_env, private_amqp_uri, exchange_name):
    """Steady load on both replicas; the relay's leader is killed -9 mid-load and started again.
    Every event PostgreSQL holds afterwards was published (by whichever replica led then): the
    store is the account, and the published sequence numbers must cover it."""
    listener = EventListener(private_amqp_uri, exchange_name, unique("test.listener"))
    env = {"AMQP_URI": private_amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "TRACKING_POSTGRES_DBNAME": pg_env["POSTGRES_DBNAME"],
           "TRACKING_POSTGRES_SCHEMA": pg_env["POSTGRES_SCHEMA"],
           "POSTGRES_USER": pg_env["POSTGRES_USER"], "EVENTS_EXCHANGE": exchange_name,
           "LEADERSHIP_POLL_INTERVAL": "0.2"}
    replicas = [ServiceProcess("tracking", env).start(), ServiceProcess("tracking", env).start()]
    stop, answered = eventlet.event.Event(), []

    def steady_load(worker: int) -> None:  # about 12 opens a second per worker
        while not stop.ready():
            # The killed replica refuses: a client would retry on the other one.
            with contextlib.suppress(requests.RequestException, AssertionError):
                answered.append(open_report(replicas[worker % 2]))
            eventlet.sleep(0.08)

    try:
        wait_for(lambda: any(leads(replica) for replica in replicas), message="a leader")
        workers = [eventlet.spawn(steady_load, n) for n in range(4)]
        eventlet.sleep(3)
        leader = next(replica for replica in replicas if leads(replica))
        leader.kill9()
        eventlet.sleep(3)
        leader.start()  # the operator's restart, still under load
        eventlet.sleep(3)
        stop.send()
        for worker in workers:
            worker.wait()
        with psycopg.connect(dbname=pg_env["POSTGRES_DBNAME"], user=pg_env["POSTGRES_USER"],
                             host="127.0.0.1") as conn:
            stored = {row[0] for row in conn.execute(
                f'SELECT notification_id FROM "{pg_env["POSTGRES_SCHEMA"]}".tracking_events')}
        assert len(answered) > 100 and len(stored) >= len(answered)

        def published() -> set[int]:
            return {int(event.sequence) for event in listener.received if event.sequence}

        try:
            wait_for(lambda: published() >= stored, timeout=60, message="every event published")
        except AssertionError:
            missing = sorted(stored - published())
            raise AssertionError(f"{len(missing)} of {len(stored)} stored events were never "
                                 f"published: {missing[:20]}") from None
    finally:
        for replica in replicas:
            replica.stop()
        listener.close()
