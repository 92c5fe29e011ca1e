"""Nothing is lost: every stored event reaches RabbitMQ as a CloudEvent, whatever crashes."""

from __future__ import annotations

import subprocess

import eventlet
import pytest

from services.tracking.domainmodel import Actor, report_id
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter, event_id
from shared.chassis.follower import LogFollower
from shared.chassis.outbox import Publisher, relay_follower
from tests.conftest import unique
from tests.support import EventListener, ServiceProcess, wait_for

pytestmark = pytest.mark.integration

OPERATOR = Actor("op-7", "operator", "phone_070")
SUPERVISOR = Actor("sup-1", "supervisor", "staff")


def open_pothole(app: TrackingApplication) -> str:
    return app.open_report(
        service_code="bache", service_name="Bache", department="obras_publicas",
        description="Bache frente a la escuela", location={"lat": 20.59, "long": -100.39},
        sla_hours=72, actor=OPERATOR,
    ).folio


@pytest.fixture
def listener(amqp_uri, exchange_name):
    listening = EventListener(amqp_uri, exchange_name, unique("test.listener"))
    yield listening
    listening.close()


def in_process_relay(app: TrackingApplication, amqp_uri: str, exchange: str) -> LogFollower:
    relay = relay_follower(app, CloudEventConverter(app), Publisher(amqp_uri, exchange),
                           poll_interval=0.2)
    app.saved_listeners.append(relay.wake.set)
    return relay


def test_an_opened_report_reaches_subscribers_as_a_cloudevent(store_env, amqp_uri,
                                                               exchange_name, listener):
    app = TrackingApplication(env=store_env)
    relay = in_process_relay(app, amqp_uri, exchange_name)
    runner = eventlet.spawn(relay.run)
    try:
        folio = open_pothole(app)
        app.assign(folio, SUPERVISOR, crew_id="C-01")
        wait_for(lambda: len(listener.received) >= 2, message="two events")
    finally:
        relay.stop()
        runner.wait()
        app.close()

    opened, assigned = listener.received
    assert opened.type == "mx.expediente.report.opened"
    assert opened.source == "/expediente/tracking"
    assert opened.subject == folio
    assert opened.sequence == "1"
    assert opened.extensions["streamversion"] == 1
    assert opened.data["folio"] == folio
    assert opened.data["channel"] == "phone_070"
    assert opened.data["actor"] == {"id": "op-7", "role": "operator", "channel": "phone_070",
                                    "crew_id": None}
    assert opened.time.tzinfo is not None
    assert "access_token_hash" not in opened.data
    assert assigned.type == "mx.expediente.report.assigned"
    assert assigned.data["crew_id"] == "C-01"
    assert assigned.id == event_id(report_id(folio), 2)
    assert listener.messages[0].properties["message_id"] == opened.id
    assert listener.messages[0].delivery_info["routing_key"] == opened.type


def test_a_relay_killed_after_the_confirm_publishes_the_event_again_after_restart(
        sqlite_env, amqp_uri, exchange_name, listener):
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "TRACKING_SQLITE_DBNAME": sqlite_env["SQLITE_DBNAME"],
           "EVENTS_EXCHANGE": exchange_name, "RELAY_POLL_INTERVAL": "0.1"}
    holding = ServiceProcess("tracking", {**env, "RELAY_HOLD_AFTER_CONFIRM": "30"}).start()
    try:
        app = TrackingApplication(env=sqlite_env)
        folio = open_pothole(app)
        app.close()
        # The relay published and RabbitMQ confirmed; the position is not saved yet.
        wait_for(lambda: listener.received, message="the first publication")
        holding.kill9()
    finally:
        holding.stop()

    restarted = ServiceProcess("tracking", env).start()
    try:
        wait_for(lambda: len(listener.received) >= 2, message="the re-publication")
    finally:
        restarted.stop()
    first, again = listener.received[:2]
    assert first.id == again.id and first.subject == again.subject == folio


def test_every_event_arrives_when_rabbitmq_restarts_while_reports_are_saved(
        pg_env, amqp_uri, exchange_name, listener):
    app = TrackingApplication(env=pg_env)
    relay = in_process_relay(app, amqp_uri, exchange_name)
    runner = eventlet.spawn(relay.run)
    folios: list[str] = []
    try:
        for _ in range(20):
            folios.append(open_pothole(app))
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        for _ in range(20):  # saved while the broker is down: stored, published later
            folios.append(open_pothole(app))
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
        for _ in range(20):
            folios.append(open_pothole(app))
        wait_for(lambda: {e.subject for e in listener.received} >= set(folios), timeout=90,
                 message="every report's event after the restart")
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=False, capture_output=True)
        relay.stop()
        runner.wait()
        app.close()
    assert {e.subject for e in listener.received} == set(folios)
