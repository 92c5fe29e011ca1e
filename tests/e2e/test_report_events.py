"""A report's events read back from tracking (HTTP and RPC), and a consumer that joins late
catching up from tracking itself: it sees every step of a report, in order, once."""

from __future__ import annotations

import eventlet
import pytest
import requests
from nameko.containers import ServiceContainer

from shared.chassis.auth import mint_token
from shared.chassis.consumer import SqlStoreProvider, cloud_event_handler
from shared.chassis.rpcclient import Remote
from shared.chassis.sqlstore import SqlStore
from shared.contracts.cloudevents import CloudEvent
from tests.conftest import unique
from tests.stack import create_vhost, delete_vhost
from tests.support import ServiceProcess, bearer, wait_for

pytestmark = pytest.mark.e2e

POTHOLE = {"service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
           "description": "Bache frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392}, "channel": "window", "sla_hours": 72}
CREW = {"crew_id": "C-07"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tracking on a RabbitMQ virtual host of its own (its RPC queue is nobody else's)."""
    vhost = create_vhost()
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    db = tmp_path_factory.mktemp("tracking") / "tracking.sqlite"
    tracking = ServiceProcess("tracking", {
        "AMQP_URI": amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "TRACKING_SQLITE_DBNAME": str(db), "RELAY_POLL_INTERVAL": "0.2"}).start()
    yield tracking, amqp_uri
    tracking.stop()
    delete_vhost(vhost)


def step(tracking, folio: str, name: str, body: dict, role: str, **claims) -> None:
    response = requests.post(f"{tracking.url}/reports/{folio}/{name}", json=body,
                             headers=bearer(role, **claims), timeout=10)
    assert response.status_code == 200, response.text


def opened_and_assigned(tracking) -> str:
    response = requests.post(f"{tracking.url}/reports", json=POTHOLE,
                             headers=bearer("operator"), timeout=10)
    assert response.status_code == 201, response.text
    folio = response.json()["folio"]
    step(tracking, folio, "assign", CREW, "supervisor")
    step(tracking, folio, "dispatch_crew", {}, "crew", crew_id="C-07")
    return folio


def test_a_reports_events_after_a_version_read_back_as_published(world):
    tracking, _ = world
    folio = opened_and_assigned(tracking)
    url = f"{tracking.url}/reports/{folio}/events"

    everything = requests.get(url, headers=bearer("auditor"), timeout=10)
    assert everything.status_code == 200, everything.text
    events = [CloudEvent.from_dict(e) for e in everything.json()["events"]]
    assert [e.extensions["streamversion"] for e in events] == [1, 2, 3]
    assert [e.type for e in events] == ["mx.expediente.report.opened",
                                        "mx.expediente.report.assigned",
                                        "mx.expediente.report.crew_dispatched"]
    assert {e.subject for e in events} == {folio}
    assert events[1].data["crew_id"] == "C-07" and "access_token_hash" not in str(events[0].data)

    later = requests.get(url, params={"after_version": 2}, headers=bearer("system"), timeout=10)
    assert [e["streamversion"] for e in later.json()["events"]] == [3]

    assert requests.get(url, timeout=10).status_code == 401
    nobody = {"Authorization": f"Bearer {mint_token('a-citizen-app', ())}"}  # no role at all
    assert requests.get(url, headers=nobody, timeout=10).status_code == 403
    bad = requests.get(url, params={"after_version": "-1"}, headers=bearer("auditor"), timeout=10)
    assert bad.status_code == 400 and "after_version" in bad.json()["errors"]
    missing = requests.get(f"{tracking.url}/reports/QRO-2026-999999/events",
                           headers=bearer("auditor"), timeout=10)
    assert missing.status_code == 404


class Follower:
    """A consumer that joins late, as notifications will: every step of every report it hears
    of, in order, catching up from tracking over RPC."""

    name = unique("follower")
    store = SqlStoreProvider()
    tracking = Remote("tracking")

    @cloud_event_handler("mx.expediente.report.*", backoff=(0.1,),
                         catch_up="fetch_report_events")
    def follow(self, event: CloudEvent, tx) -> None:
        tx.execute("INSERT INTO steps (folio, version, type) VALUES (%s, %s, %s)",
                   (event.subject, event.extensions["streamversion"], event.type))

    def fetch_report_events(self, folio: str, after_version: int) -> list[dict]:
        return self.tracking.call("report_events", folio, after_version)


def test_a_consumer_that_joins_late_catches_up_from_tracking_in_order(world, tmp_path):
    tracking, amqp_uri = world
    folio = opened_and_assigned(tracking)  # versions 1-3, before the consumer's queue exists
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "follower.sqlite")}
    steps = SqlStore.from_env(env)
    with steps.transaction() as tx:
        tx.execute("CREATE TABLE steps (folio TEXT, version INTEGER, type TEXT)")
    container = ServiceContainer(Follower, {"AMQP_URI": amqp_uri, **env})
    container.start()
    try:
        step(tracking, folio, "set_en_route", {}, "crew", crew_id="C-07")  # version 4
        step(tracking, folio, "arrive", {}, "crew", crew_id="C-07")        # version 5

        def applied() -> list[tuple[int, str]]:
            with steps.transaction() as tx:
                return tx.execute("SELECT version, type FROM steps WHERE folio = %s ORDER BY "
                                  "rowid", (folio,)).fetchall()

        wait_for(lambda: len(applied()) >= 5, timeout=30, message="five steps at the consumer")
        assert [version for version, _ in applied()] == [1, 2, 3, 4, 5]
        assert applied()[-1][1] == "mx.expediente.report.crew_arrived"
    finally:
        with eventlet.Timeout(20):
            container.stop()
        steps.close()
