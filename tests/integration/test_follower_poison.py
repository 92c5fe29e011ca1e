"""One bad event stops nobody: an event the views or the relay cannot take is parked with its
error, counted, and the followers move on; an operator retries it once the cause is fixed
(PostgreSQL: it refuses U+0000 in text, where SQLite does not)."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import pytest

from services.tracking import cli
from services.tracking.domainmodel import Actor
from services.tracking.read import timeline
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.chassis.outbox import Publisher, relay_follower
from shared.chassis.runtime import app_env
from tests.conftest import unique
from tests.integration.bus import counter
from tests.support import EventListener, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

OPERATOR = Actor("op-070", "operator", "phone_070")
SUPERVISOR = Actor("sup-obras", "supervisor", "staff")
CREW = Actor("cuadrilla-7", "crew", "field", crew_id="C-07")
YEAR_ONE = datetime.fromisoformat("0001-01-01T00:00:00+14:00")  # UTC cannot hold it


@pytest.fixture
def app(pg_env):
    app = TrackingApplication(env=app_env(pg_env))
    yield app
    app.close()


def open_pothole(app, description="Bache frente a la escuela"):
    return app.open_report(service_code="bache", service_name="Bache", department="obras",
                           description=description, location={"lat": 20.59, "long": -100.39},
                           actor=OPERATOR).folio


def photo_from_an_earlier_version(app, folio):
    """A crew's photo dated year 1 at +14:00, stored before the domain refused such dates (the
    private event method: what an older version's add_photo recorded)."""
    report = app.get_report(folio)
    report._photo_added(actor=CREW, url="https://fotos.example/antes.jpg", caption="Antes",
                        stage="before", step_id=None, occurred_at=YEAR_ONE)
    app.save(report)


def running(follower):
    loop = threading.Thread(target=follower.run, daemon=True)
    loop.start()
    return loop


def test_a_report_postgresql_cannot_store_is_parked_and_the_views_move_on(app, caplog):
    projector = ReportProjector(app, poll_interval=0.05)
    app.saved_listeners.append(projector.follower.wake.set)
    parked_before = counter("expediente_projection_failures_total", follower="reports")
    loop = running(projector.follower)
    try:
        bad = open_pothole(app, description="Bache\x00 profundo")  # past the HTTP edge
        app.assign(bad, SUPERVISOR, crew_id="C-07")
        good = open_pothole(app)
        wait_for(lambda: projector.public_view(good), timeout=10, message="the next report")
    finally:
        projector.follower.stop()
        loop.join(10)

    [parked] = projector.follower.failures()
    assert (parked.event_type, parked.subject, parked.originator_version) == ("opened", bad, 1)
    assert "DataError" in parked.error and "NUL" in parked.error
    assert counter("expediente_projection_failures_total", follower="reports") == parked_before + 1
    assert "parked notification" in caplog.text
    assert projector.position() == app.recorder.max_notification_id()
    assert projector.public_view(bad) is None  # its later steps are left out, not parked

    # The cause is in the event itself: a retry leaves it parked, with the error it met.
    assert projector.follower.retry_failures() == {"cleared": [], "parked": [
        parked.notification_id]}
    assert [f.notification_id for f in projector.follower.failures()] == [parked.notification_id]


def test_a_photo_dated_year_one_reaches_the_views_at_the_earliest_time_utc_holds(app):
    projector = ReportProjector(app)
    folio = open_pothole(app)
    photo_from_an_earlier_version(app, folio)
    projector.catch_up()
    entry = projector.staff_view(folio)["timeline"][-1]
    assert (entry["type"], entry["at"]) == ("photo_added", "0001-01-01T00:00:00.000000+00:00")
    assert projector.follower.failures() == []


def test_an_event_parked_by_a_bug_applies_once_the_fix_is_deployed(app, pg_env, monkeypatch,
                                                                   capsys):
    projector = ReportProjector(app)
    folio = open_pothole(app)
    # The views as they were before iso() clamped: year 1 at +14:00 overflowed in astimezone.
    with monkeypatch.context() as before_the_fix:
        before_the_fix.setattr(timeline, "iso", lambda value: value and value.astimezone(
            timeline.UTC).isoformat(timespec="microseconds"))
        photo_from_an_earlier_version(app, folio)
        app.add_comment(folio, SUPERVISOR, text="Se programó la reparación")
        projector.catch_up()
        [parked] = projector.follower.failures()
        assert (parked.event_type, parked.subject) == ("photo_added", folio)
        assert "OverflowError" in parked.error
        # The report's later steps kept reaching the views.
        assert projector.staff_view(folio)["timeline"][-1]["type"] == "comment_added"

    for key in ("PERSISTENCE_MODULE", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER"):
        monkeypatch.setenv(key, pg_env[key])
    monkeypatch.setenv("TRACKING_POSTGRES_DBNAME", pg_env["POSTGRES_DBNAME"])
    monkeypatch.setenv("TRACKING_POSTGRES_SCHEMA", pg_env["POSTGRES_SCHEMA"])
    assert cli.main(["failures"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [f["notification_id"] for f in listed["reports"]] == [parked.notification_id]
    assert listed["tracking.relay"] == []

    assert cli.main(["failures", "--retry", "--id", str(parked.notification_id)]) == 0
    assert json.loads(capsys.readouterr().out)["reports"] == {
        "cleared": [parked.notification_id], "parked": []}
    assert projector.follower.failures() == []
    types = [entry["type"] for entry in projector.staff_view(folio)["timeline"]]
    assert types == ["opened", "photo_added", "comment_added"]


@pytest.fixture
def listener(amqp_uri, exchange_name):
    listening = EventListener(amqp_uri, exchange_name, unique("test.listener"))
    yield listening
    listening.close()


def test_the_relay_parks_what_it_cannot_convert_and_retries_what_it_cannot_publish(
        app, amqp_uri, exchange_name, listener):
    convert = CloudEventConverter(app)
    unconvertible: set[str] = set()

    def converter(notification):
        if str(notification.originator_id) in unconvertible:
            raise ValueError("this event has no CloudEvent form")
        return convert(notification)

    class BrokerAwayOnce(Publisher):
        calls = 0

        def publish(self, events):
            type(self).calls += 1
            if type(self).calls == 1:
                raise ConnectionError("RabbitMQ went away")
            super().publish(events)

    relay = relay_follower(app, converter, BrokerAwayOnce(amqp_uri, exchange_name),
                           poll_interval=0.05)
    bad = open_pothole(app)
    unconvertible.add(str(app.get_report(bad).id))
    good = open_pothole(app)

    loop = running(relay)
    try:
        wait_for(lambda: [e.subject for e in listener.received] == [good],
                 message="the publishable event, after the broker came back")
        [parked] = relay.failures()
        assert (parked.event_type, parked.originator_version) == ("Opened", 1)
        assert "has no CloudEvent form" in parked.error
        assert relay.position() == app.recorder.max_notification_id()
        assert BrokerAwayOnce.calls >= 2  # the first publish failed: retried, never parked

        unconvertible.clear()  # fixed
        assert relay.retry_failures() == {"cleared": [parked.notification_id], "parked": []}
        wait_for(lambda: sorted(e.subject for e in listener.received) == sorted([good, bad]),
                 message="the parked event, published by the retry")
    finally:
        relay.stop()
        loop.join(10)
