"""Consumers of tracking's events: each applied once, failures retried then parked, never lost."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime

import kombu
import pytest

from shared.chassis.consumer import (
    SqlStoreProvider,
    cloud_event_handler,
    list_dead_letters,
    replay_dead_letters,
)
from shared.chassis.sqlstore import SqlStore
from shared.contracts.cloudevents import CloudEvent
from tests.conftest import unique
from tests.integration.bus import counter
from tests.support import wait_for

pytestmark = pytest.mark.integration

CREW_ARRIVED = "mx.expediente.report.crew_arrived"


def crew_arrived(folio: str = "QRO-2026-000123", version: int = 4) -> CloudEvent:
    """What tracking publishes when the crew reaches the pothole."""
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="/expediente/tracking",
        type=CREW_ARRIVED,
        subject=folio,
        time=datetime.now(UTC),
        data={"folio": folio, "version": version,
              "actor": {"id": "crew-3", "role": "crew", "channel": "field_app", "crew_id": "C-03"},
              "step_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat()},
        sequence="17",
        extensions={"streamversion": version},
    )


def crew_log_service(*, max_attempts: int = 3, backoff: tuple[float, ...] = (0.05,)) -> type:
    """A consumer like notifications: it writes one row per crew step it hears of. Its `broken`
    switch stands in for an SMS gateway that is down."""

    class CrewLog:
        name = unique("crew_log")
        store = SqlStoreProvider()
        received: list[CloudEvent] = []
        broken = False

        @cloud_event_handler("mx.expediente.report.*", store="store",
                             max_attempts=max_attempts, backoff=backoff)
        def handle_report_event(self, event: CloudEvent, tx) -> None:
            type(self).received.append(event)
            tx.execute("INSERT INTO crew_log (folio, event_id) VALUES (%s, %s)",
                       (event.subject, event.id))
            if type(self).broken:
                raise RuntimeError("SMS gateway unreachable")

    CrewLog.queue = f"{CrewLog.name}.handle_report_event"
    return CrewLog


class Ledger:
    """The test's window on the consumer's database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.store = SqlStore.from_env(env)
        with self.store.transaction() as tx:
            tx.execute("CREATE TABLE crew_log (folio TEXT NOT NULL, event_id TEXT NOT NULL)")

    def rows(self, event_id: str) -> int:
        with self.store.transaction() as tx:
            return tx.execute("SELECT count(*) FROM crew_log WHERE event_id = %s",
                              (event_id,)).fetchone()[0]

    def processed(self, event_id: str) -> int:
        with self.store.transaction() as tx:
            return tx.execute("SELECT count(*) FROM processed_events WHERE event_id = %s",
                              (event_id,)).fetchone()[0]


@pytest.fixture
def ledger(store_env):
    window = Ledger(store_env)
    yield window
    window.store.close()


@pytest.fixture
def sqlite_ledger(sqlite_env):
    window = Ledger(sqlite_env)
    yield window
    window.store.close()


def test_a_crew_arrival_reaches_the_handler_as_the_cloudevent_tracking_published(
        bus, sqlite_env, sqlite_ledger):
    CrewLog = crew_log_service()
    bus.run(CrewLog, sqlite_env)
    arrived = crew_arrived()

    bus.publish(arrived)

    wait_for(lambda: CrewLog.received, message="the event at the handler")
    (received,) = CrewLog.received
    assert received == arrived
    assert received.type == CREW_ARRIVED
    assert received.subject == "QRO-2026-000123"
    assert received.sequence == "17"
    assert received.extensions == {"streamversion": 4}
    assert received.data["actor"]["crew_id"] == "C-03"


def test_start_up_declares_durable_retry_and_parking_queues_before_anything_is_published(
        bus, sqlite_env, sqlite_ledger):
    CrewLog = crew_log_service(max_attempts=4, backoff=(0.2, 1.0, 5.0))
    bus.run(CrewLog, sqlite_env)

    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "name", "durable", "arguments", "--formatter", "json",
         "-q"], check=True, capture_output=True, text=True).stdout
    queues = {q["name"]: q for q in json.loads(listed) if q["name"].startswith(CrewLog.queue)}

    def arguments(name: str) -> dict:
        return {key: value for key, _, value in queues[name]["arguments"]}

    assert sorted(queues) == sorted([CrewLog.queue, f"{CrewLog.queue}.dead"] +
                                    [f"{CrewLog.queue}.retry.{n}" for n in (1, 2, 3)])
    assert all(q["durable"] for q in queues.values())
    assert [arguments(f"{CrewLog.queue}.retry.{n}")["x-message-ttl"] for n in (1, 2, 3)] \
        == [200, 1000, 5000]
    assert arguments(f"{CrewLog.queue}.retry.1")["x-dead-letter-exchange"] == bus.retry_exchange
    assert arguments(f"{CrewLog.queue}.retry.1")["x-dead-letter-routing-key"] == CrewLog.queue


def test_an_arrival_delivered_twice_is_logged_once(bus, store_env, ledger):
    CrewLog = crew_log_service()
    bus.run(CrewLog, store_env)
    arrived = crew_arrived()

    bus.publish(arrived, arrived)  # the relay re-published after a crash: at-least-once

    wait_for(lambda: counter("expediente_consumer_duplicates_skipped_total",
                             consumer=CrewLog.queue) == 1, message="the duplicate skipped")
    assert ledger.rows(arrived.id) == 1
    assert ledger.processed(arrived.id) == 1
    assert CrewLog.received == [arrived]
    wait_for(lambda: counter("expediente_consumer_events_processed_total",
                             consumer=CrewLog.queue) == 1, message="the first delivery counted")


def test_a_notification_that_keeps_failing_is_retried_then_parked_and_replayed_once_fixed(
        bus, store_env, ledger):
    CrewLog = crew_log_service(max_attempts=3, backoff=(0.05,))
    CrewLog.broken = True
    bus.run(CrewLog, store_env)
    arrived = crew_arrived()

    bus.publish(arrived)

    wait_for(lambda: bus.parked(CrewLog.queue) == 1, message="the event in the dead queue")
    assert len(CrewLog.received) == 3  # the first delivery and two retries
    assert ledger.rows(arrived.id) == 0
    assert counter("expediente_consumer_handler_failures_total", consumer=CrewLog.queue) == 3
    # The broker counts the parked copy before the consumer has heard the confirm and counted it.
    wait_for(lambda: counter("expediente_consumer_dead_lettered_total", consumer=CrewLog.queue,
                             reason="max_attempts") == 1, message="the parking counted")

    # The operator looks: listing shows the letter and leaves it where it is.
    (letter,) = list_dead_letters(bus.amqp_uri, CrewLog.queue)
    assert letter["message_id"] == arrived.id
    assert (letter["type"], letter["subject"]) == (CREW_ARRIVED, arrived.subject)
    assert letter["routing_key"] == CREW_ARRIVED
    assert letter["attempts"] == 3
    assert letter["reason"] == "max_attempts"
    assert letter["error_type"] == "builtins.RuntimeError"
    assert letter["error_message"] == "SMS gateway unreachable"
    assert letter["first_failed_at"] <= letter["last_failed_at"]
    assert CloudEvent.from_json(letter["body"]) == arrived
    assert list_dead_letters(bus.amqp_uri, f"{CrewLog.queue}.dead") == [letter]
    assert bus.parked(CrewLog.queue) == 1

    # The gateway is back; the operator replays and the crew step is logged.
    CrewLog.broken = False
    assert replay_dead_letters(bus.amqp_uri, CrewLog.queue) == 1

    wait_for(lambda: ledger.rows(arrived.id) == 1, message="the replayed event applied")
    assert ledger.processed(arrived.id) == 1
    assert bus.parked(CrewLog.queue) == 0
    assert list_dead_letters(bus.amqp_uri, CrewLog.queue) == []


def test_a_failing_handler_leaves_no_partial_write_and_no_processed_mark(bus, store_env, ledger):
    CrewLog = crew_log_service(max_attempts=1)
    CrewLog.broken = True
    bus.run(CrewLog, store_env)
    arrived = crew_arrived()

    bus.publish(arrived)

    wait_for(lambda: bus.parked(CrewLog.queue) == 1, message="the event in the dead queue")
    assert CrewLog.received == [arrived]  # it ran, wrote its row, then raised
    assert ledger.rows(arrived.id) == 0
    assert ledger.processed(arrived.id) == 0


def test_a_message_that_is_not_a_cloudevent_is_parked_at_once_without_calling_the_handler(
        bus, sqlite_env, sqlite_ledger):
    CrewLog = crew_log_service(max_attempts=4)
    bus.run(CrewLog, sqlite_env)

    bus.publish_raw(b'{"folio": "QRO-2026-000123"', routing_key=CREW_ARRIVED)

    wait_for(lambda: bus.parked(CrewLog.queue) == 1, message="the bad message parked")
    (letter,) = list_dead_letters(bus.amqp_uri, CrewLog.queue)
    assert letter["reason"] == "invalid_cloudevent"
    assert letter["attempts"] == 1
    assert letter["error_message"] == "body is not JSON"
    assert letter["body"] == '{"folio": "QRO-2026-000123"'
    assert CrewLog.received == []


def test_a_failed_event_stays_queued_when_its_copy_cannot_be_placed(bus, sqlite_env,
                                                                   sqlite_ledger):
    CrewLog = crew_log_service(max_attempts=1)
    CrewLog.broken = True
    container = bus.run(CrewLog, sqlite_env)
    with kombu.Connection(bus.amqp_uri) as conn:  # someone deleted the parking queue
        conn.default_channel.queue_delete(f"{CrewLog.queue}.dead")
    arrived = crew_arrived()

    bus.publish(arrived)

    wait_for(lambda: len(CrewLog.received) >= 2, message="the event handed back and tried again")
    container.stop()
    with kombu.Connection(bus.amqp_uri) as conn:
        live = conn.default_channel.queue_declare(CrewLog.queue, passive=True)
    assert live.message_count == 1
    assert counter("expediente_consumer_dead_lettered_total", consumer=CrewLog.queue,
                   reason="max_attempts") == 0


def test_on_quorum_queues_as_in_the_cluster_a_failing_event_is_parked_and_replayed_too(
        bus, sqlite_env, sqlite_ledger):
    CrewLog = crew_log_service(max_attempts=2, backoff=(0.05,))
    CrewLog.broken = True
    bus.run(CrewLog, {**sqlite_env, "EVENTS_QUEUE_TYPE": "quorum"})
    arrived = crew_arrived()

    bus.publish(arrived)

    wait_for(lambda: bus.parked(CrewLog.queue) == 1, message="the event in the dead queue")
    assert len(CrewLog.received) == 2
    CrewLog.broken = False
    assert replay_dead_letters(bus.amqp_uri, CrewLog.queue) == 1
    wait_for(lambda: len(CrewLog.received) == 3, message="the replayed event handled")
