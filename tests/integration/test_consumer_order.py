"""Order per report: a consumer applies each report's events in stream-version order, once,
fetching what it missed from the source when it sees a gap (real RabbitMQ; SQLite and PostgreSQL).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.chassis.consumer import SqlStoreProvider, cloud_event_handler
from shared.chassis.sqlstore import SqlStore
from shared.contracts.cloudevents import CloudEvent
from tests.conftest import unique
from tests.integration.bus import counter
from tests.support import wait_for

pytestmark = pytest.mark.integration

STEPS = ["opened", "assigned", "crew_dispatched", "crew_en_route", "crew_arrived",
         "work_completed"]


def report_stream(folio: str) -> list[CloudEvent]:
    """A pothole's events as tracking publishes them, version 1 to 6."""
    report = uuid.uuid4()
    return [CloudEvent(id=str(uuid.uuid5(report, str(version))), source="/expediente/tracking",
                       type=f"mx.expediente.report.{step}", subject=folio,
                       time=datetime.now(UTC), data={"folio": folio, "version": version},
                       sequence=str(100 + version), extensions={"streamversion": version})
            for version, step in enumerate(STEPS, start=1)]


def timeline_service(source: dict[str, list[CloudEvent]]) -> type:
    """A consumer like notifications: one row per step, in the order it applied them. Its
    `fetch_report_events` stands in for tracking's `report_events` RPC, reading `source`."""

    class Timeline:
        name = unique("timeline")
        store = SqlStoreProvider()
        fetched: list[tuple[str, int]] = []

        @cloud_event_handler("mx.expediente.report.*", store="store", backoff=(0.05,),
                             catch_up="fetch_report_events")
        def apply(self, event: CloudEvent, tx) -> None:
            tx.execute("INSERT INTO timeline (folio, version, step) VALUES (%s, %s, %s)",
                       (event.subject, event.extensions["streamversion"],
                        event.type.rsplit(".", 1)[1]))

        def fetch_report_events(self, subject: str, after_version: int) -> list[dict]:
            type(self).fetched.append((subject, after_version))
            return [e.to_dict() for e in source.get(subject, [])
                    if e.extensions["streamversion"] > after_version]

    return Timeline


class Timeline:
    def __init__(self, env: dict[str, str]) -> None:
        self.store = SqlStore.from_env(env)
        counted = "" if self.store.dialect == "sqlite" else " GENERATED ALWAYS AS IDENTITY"
        with self.store.transaction() as tx:
            tx.execute(f"CREATE TABLE timeline (n INTEGER PRIMARY KEY{counted}, "
                       "folio TEXT NOT NULL, version INTEGER NOT NULL, step TEXT NOT NULL)")

    def versions(self, folio: str) -> list[int]:
        with self.store.transaction() as tx:
            return [row[0] for row in tx.execute(
                "SELECT version FROM timeline WHERE folio = %s ORDER BY n", (folio,)).fetchall()]


@pytest.fixture
def timeline(store_env):
    window = Timeline(store_env)
    yield window
    window.store.close()


def test_events_arriving_out_of_order_are_applied_in_stream_order_once(bus, store_env, timeline):
    folio = "QRO-2026-000321"
    stream = report_stream(folio)
    service = timeline_service({folio: stream})
    bus.run(service, store_env)

    # 3 overtakes 2 (a retried message), then 2 and 3 come again, then the rest.
    bus.publish(stream[0], stream[2], stream[1], stream[2], stream[3], stream[4], stream[5])

    wait_for(lambda: len(timeline.versions(folio)) >= 6, message="six steps applied")
    assert timeline.versions(folio) == [1, 2, 3, 4, 5, 6]
    # Workers race (3 may overtake 2, 5 may overtake 4): whoever met a gap fetched it.
    assert all(subject == folio for subject, _ in service.fetched)


def test_a_consumer_that_starts_mid_stream_fetches_what_it_never_received(
        bus, store_env, timeline):
    early, late = "QRO-2026-000400", "QRO-2026-000401"
    streams = {early: report_stream(early), late: report_stream(late)}
    service = timeline_service(streams)
    container = bus.run(service, store_env)
    consumer = f"{service.name}.apply"
    filled = counter("expediente_consumer_gaps_filled_total", consumer=consumer)

    # Versions 1-4 were published before this consumer's queue existed: it hears of 5 and 6.
    bus.publish(streams[early][4], streams[late][0], streams[early][5], streams[late][1])

    wait_for(lambda: len(timeline.versions(early)) == 6 and len(timeline.versions(late)) == 2,
             message="every step of both reports")
    assert timeline.versions(early) == [1, 2, 3, 4, 5, 6]
    assert timeline.versions(late) == [1, 2]
    assert counter("expediente_consumer_gaps_filled_total", consumer=consumer) == filled + 1
    assert container  # still running: nothing was parked
    assert bus.parked(consumer) == 0


def test_a_gap_the_source_cannot_fill_yet_is_retried_then_parked_not_skipped(
        bus, sqlite_env):
    timeline = Timeline(sqlite_env)
    folio = "QRO-2026-000500"
    stream = report_stream(folio)
    service = timeline_service({folio: stream[:2]})  # the source lacks version 3
    bus.run(service, sqlite_env)

    bus.publish(stream[0], stream[3])

    consumer = f"{service.name}.apply"
    wait_for(lambda: bus.parked(consumer) == 1, message="version 4 parked")
    assert timeline.versions(folio) == [1]  # 2 was fetchable, but never applied without 3
    timeline.store.close()
