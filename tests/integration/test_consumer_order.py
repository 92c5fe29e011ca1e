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


def record(tx, event: CloudEvent) -> None:
    if (event.data or {}).get("poison"):
        raise RuntimeError(f"cannot apply {event.subject} v{event.extensions['streamversion']}")
    tx.execute("INSERT INTO timeline (folio, version, step) VALUES (%s, %s, %s)",
               (event.subject, event.extensions["streamversion"], event.type.rsplit(".", 1)[1]))


def timeline_service(source: dict[str, list[CloudEvent]], batch: int = 0) -> type:
    """A consumer like notifications: one row per step, in the order it applied them. Its
    `fetch_report_events` stands in for tracking's `report_events` RPC, reading `source`. With
    `batch`, its handler takes the events in lists (`sizes` says how long each was)."""

    class Timeline:
        name = unique("timeline")
        store = SqlStoreProvider()
        fetched: list[tuple[str, int]] = []
        sizes: list[int] = []

        if batch:
            @cloud_event_handler("mx.expediente.report.*", store="store", backoff=(0.05,),
                                 catch_up="fetch_report_events", batch=batch)
            def apply(self, events: list[CloudEvent], tx) -> None:
                type(self).sizes.append(len(events))
                for event in events:
                    record(tx, event)
        else:
            @cloud_event_handler("mx.expediente.report.*", store="store", backoff=(0.05,),
                                 catch_up="fetch_report_events")
            def apply(self, event: CloudEvent, tx) -> None:
                record(tx, event)

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


@pytest.mark.parametrize("batch", [0, 20], ids=["alone", "batched"])
def test_events_arriving_out_of_order_are_applied_in_stream_order_once(bus, store_env, timeline,
                                                                       batch):
    folio = "QRO-2026-000321"
    stream = report_stream(folio)
    service = timeline_service({folio: stream}, batch)
    bus.run(service, store_env)

    # 3 overtakes 2 (a retried message), then 2 and 3 come again, then the rest.
    bus.publish(stream[0], stream[2], stream[1], stream[2], stream[3], stream[4], stream[5])

    wait_for(lambda: len(timeline.versions(folio)) >= 6, message="six steps applied")
    assert timeline.versions(folio) == [1, 2, 3, 4, 5, 6]
    # Workers race (3 may overtake 2, 5 may overtake 4): whoever met a gap fetched it.
    assert all(subject == folio for subject, _ in service.fetched)


@pytest.mark.parametrize("batch", [0, 20], ids=["alone", "batched"])
def test_a_consumer_that_starts_mid_stream_fetches_what_it_never_received(
        bus, store_env, timeline, batch):
    early, late = "QRO-2026-000400", "QRO-2026-000401"
    streams = {early: report_stream(early), late: report_stream(late)}
    service = timeline_service(streams, batch)
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


@pytest.mark.parametrize("batch", [0, 20], ids=["alone", "batched"])
def test_a_gap_the_source_cannot_fill_yet_is_retried_then_parked_not_skipped(
        bus, sqlite_env, batch):
    timeline = Timeline(sqlite_env)
    folio = "QRO-2026-000500"
    stream = report_stream(folio)
    service = timeline_service({folio: stream[:2]}, batch)  # the source lacks version 3
    bus.run(service, sqlite_env)

    bus.publish(stream[0], stream[3])

    consumer = f"{service.name}.apply"
    wait_for(lambda: bus.parked(consumer) == 1, message="version 4 parked")
    assert timeline.versions(folio) == [1]  # 2 was fetchable, but never applied without 3
    timeline.store.close()


def test_a_burst_goes_in_batches_each_report_in_order_and_once(bus, store_env, timeline):
    """40 reports' events published version by version (as a busy tracking does), some twice and
    some overtaking their predecessor: the events that wait while a batch is applied go
    together, and every report ends with each version once, in order."""
    streams = {f"QRO-2026-{n:06d}": report_stream(f"QRO-2026-{n:06d}") for n in range(600, 640)}
    service = timeline_service(streams, batch=20)
    bus.run(service, store_env)
    burst = [stream[version] for version in range(6) for stream in streams.values()]
    burst[10], burst[50] = burst[50], burst[10]  # a report's version 2 before its version 1
    bus.publish(*burst, *burst[::7])

    wait_for(lambda: all(len(timeline.versions(f)) >= 6 for f in streams), timeout=60,
             message="every step of every report")
    assert all(timeline.versions(folio) == [1, 2, 3, 4, 5, 6] for folio in streams)
    assert max(service.sizes) > 1  # they did go together
    assert bus.parked(f"{service.name}.apply") == 0


def test_an_event_that_fails_in_a_batch_fails_alone_and_the_rest_are_applied(
        bus, store_env, timeline):
    """The batch rolls back and its events are taken one at a time: the poisoned one is retried
    and then parked, on its own; the others are applied once."""
    streams = {f"QRO-2026-{n:06d}": report_stream(f"QRO-2026-{n:06d}") for n in range(700, 710)}
    poisoned = "QRO-2026-000703"
    streams[poisoned] = streams[poisoned][:3]
    streams[poisoned][2].data["poison"] = True  # its version 3 cannot be applied
    service = timeline_service(streams, batch=20)
    bus.run(service, store_env)
    consumer = f"{service.name}.apply"
    split = counter("expediente_consumer_batches_split_total", consumer=consumer)

    bus.publish(*(stream[version] for version in range(6) for stream in streams.values()
                  if version < len(stream)))

    wait_for(lambda: bus.parked(consumer) == 1, timeout=60, message="version 3 parked")
    wait_for(lambda: all(len(timeline.versions(f)) == 6 for f in streams if f != poisoned),
             message="every other report's steps")
    assert all(timeline.versions(f) == [1, 2, 3, 4, 5, 6] for f in streams if f != poisoned)
    assert timeline.versions(poisoned) == [1, 2]
    assert counter("expediente_consumer_batches_split_total", consumer=consumer) > split
