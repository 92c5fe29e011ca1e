"""A crew on its way says when it expects to arrive: the `eta` rides on `crew_en_route`, the
citizen reads it on the status page, and a time that cannot be (before the crew set out, days
ahead) is refused with the reason. Events stored before crews could say it still load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError

from services.tracking import schemas
from services.tracking.domainmodel import Actor, InvalidCommand
from services.tracking.read.pages import render_status
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.contracts.events import load_data

CITY = ZoneInfo("America/Mexico_City")
OPERATOR = Actor("operadora-ana-070", "operator", "phone_070")
SUPERVISOR = Actor("supervisor-obras-luis", "supervisor", "staff")
CREW = Actor("cuadrillero-pedro", "crew", "field", crew_id="C-07")


@pytest.fixture
def app(sqlite_env):
    app = TrackingApplication(env=sqlite_env)
    yield app
    app.close()


def dispatched(app) -> str:
    """A pothole whose crew C-07 has just set out."""
    folio = app.open_report(service_code="bache", service_name="Bache", department="obras",
                            description="Bache frente al mercado",
                            location={"lat": 20.59, "long": -100.39}, actor=OPERATOR).folio
    app.assign(folio, SUPERVISOR, crew_id="C-07")
    app.dispatch_crew(folio, CREW, step_id="salida-1")
    return folio


def test_the_citizen_reads_when_the_crew_expects_to_arrive(app):
    folio = dispatched(app)
    setting_out = datetime.now(CITY)
    eta = (setting_out + timedelta(minutes=25)).replace(microsecond=0)
    app.set_en_route(folio, CREW, step_id="camino-1", occurred_at=setting_out, eta=eta)

    projector = ReportProjector(app)
    projector.catch_up()
    public = projector.public_view(folio)
    [en_route] = [e for e in public["timeline"] if e["type"] == "crew_en_route"]
    assert datetime.fromisoformat(en_route["eta"]) == eta
    page = render_status(folio, public)
    assert f"Llegada estimada: <time datetime=\"{en_route['eta']}\">" in page
    assert eta.strftime("%d/%m/%Y %H:%M") in page  # in the city's time

    published = CloudEventConverter(app).convert(app.history(folio)[-1])
    assert published.type.endswith("crew_en_route")
    assert load_data("crew_en_route", published.data)["eta"] == eta


def test_without_an_eta_the_step_says_none(app):
    folio = dispatched(app)
    app.set_en_route(folio, CREW, step_id="camino-1")

    projector = ReportProjector(app)
    projector.catch_up()
    [en_route] = [e for e in projector.public_view(folio)["timeline"]
                  if e["type"] == "crew_en_route"]
    assert en_route["eta"] is None
    assert "Llegada estimada" not in render_status(folio, projector.public_view(folio))


@pytest.mark.parametrize(("minutes", "reason"), [
    (-10, "not after the crew set out"), (0, "not after the crew set out"),
    (25 * 60, "more than 24 hours")])
def test_an_eta_that_cannot_be_is_refused_and_records_nothing(app, minutes, reason):
    folio = dispatched(app)
    setting_out = datetime.now(CITY) + timedelta(seconds=1)
    with pytest.raises(InvalidCommand, match=reason):
        app.set_en_route(folio, CREW, step_id="camino-1", occurred_at=setting_out,
                         eta=setting_out + timedelta(minutes=minutes))
    assert app.get_report(folio).step == "dispatched" and len(app.history(folio)) == 3


def test_an_eta_without_a_time_zone_is_refused(app):
    folio = dispatched(app)
    with pytest.raises(InvalidCommand, match="time zone"):
        app.set_en_route(folio, CREW, eta=datetime.now() + timedelta(minutes=20))


def test_without_the_crews_time_the_eta_counts_from_now(app):
    folio = dispatched(app)
    with pytest.raises(InvalidCommand, match="not after"):
        app.set_en_route(folio, CREW, eta=datetime.now(UTC) - timedelta(minutes=5))
    app.set_en_route(folio, CREW, eta=datetime.now(UTC) + timedelta(minutes=5))
    assert app.get_report(folio).step == "en_route"


@pytest.mark.parametrize(("eta", "message"), [
    ("AFTER:-5", "not after the crew set out"),
    ("AFTER:1500", "more than 24 hours"),
    ("2026-12-05T10:42:00", "aware"),
    ("mañana temprano", "Not a valid datetime"),
    ("9999-12-31T23:59:59+14:00", "between the years"),
])
def test_the_command_door_says_what_is_wrong_with_the_eta(eta, message):
    occurred_at = datetime.now(CITY).replace(microsecond=0)
    if eta.startswith("AFTER:"):
        eta = (occurred_at + timedelta(minutes=int(eta[6:]))).isoformat()
    with pytest.raises(ValidationError) as refused:
        schemas.EnRouteSchema().load({"occurred_at": occurred_at.isoformat(), "eta": eta})
    assert message in str(refused.value.messages["eta"])


def test_a_crew_en_route_stored_before_crews_said_an_eta_still_loads(sqlite_env):
    app = TrackingApplication(env=sqlite_env)
    try:
        folio = dispatched(app)
        report = app.get_report(folio)
        report.set_en_route(CREW, "camino-1", None)
        [en_route] = report.collect_events()
        del en_route.__dict__["eta"]  # the shape Report.CrewEnRoute had until now
        stored = app.mapper.to_stored_event(en_route)
        assert b"eta" not in stored.state and b"camino-1" in stored.state
        app.recorder.insert_events([stored])

        loaded = app.get_report(folio)
        assert (loaded.version, loaded.step) == (4, "en_route") and loaded.has_step("camino-1")
        assert not hasattr(app.history(folio)[-1], "eta")
        app.arrive(folio, CREW, step_id="llegada-1")
        assert app.get_report(folio).step == "on_site"

        published = CloudEventConverter(app).convert(app.history(folio)[3])
        assert "eta" not in published.data
        assert load_data("crew_en_route", published.data)["eta"] is None
        projector = ReportProjector(app)
        projector.catch_up()
        timeline = projector.public_view(folio)["timeline"]
        assert [e.get("eta") for e in timeline if e["type"] == "crew_en_route"] == [None]
        assert projector.public_view(folio)["step"] == "on_site"
    finally:
        app.close()
