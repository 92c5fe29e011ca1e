"""The published contract: every event tracking emits loads cleanly through the schema in shared/,
and carries nothing private (no access token hash, no private or internal comment text)."""

from __future__ import annotations

import pytest

from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.contracts.events import SCHEMAS, load_data, short_name

OPERATOR = Actor("op-1", "operator", "phone_070")
SUPERVISOR = Actor("sup-1", "supervisor", "staff")
CREW = Actor("crew-7", "crew", "field", crew_id="C-07")


@pytest.fixture
def published():
    """Every event type of the catalogue, produced by walking reports through their lives."""
    app = TrackingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    opened = app.open_report(
        service_code="bache", service_name="Bache", department="obras_publicas",
        description="Bache frente a la escuela", location={"lat": 20.59, "long": -100.39},
        attributes={"profundidad": "15 cm"}, media_urls=["https://fotos.example/1.jpg"],
        sla_hours=72, actor=OPERATOR)
    folio = opened.folio
    app.triage(folio, SUPERVISOR, department="obras_publicas", priority="high",
               service_code="bache")
    app.assign(folio, SUPERVISOR, crew_id="C-07")
    app.dispatch_crew(folio, CREW, step_id="s-1")
    app.set_en_route(folio, CREW)
    app.arrive(folio, CREW)
    app.add_photo(folio, CREW, url="https://fotos.example/2.jpg", caption="Antes", stage="before")
    app.log_materials(folio, CREW, items=[{"code": "MEZ-ASF", "quantity": 0.5, "unit": "m3"}])
    app.complete_work(folio, CREW, notes="Rellenado")
    app.add_comment(folio, SUPERVISOR, text="nota interna", visibility="internal")
    app.add_comment(folio, SUPERVISOR, text="Gracias por reportar", visibility="public")
    app.close_report(folio, SUPERVISOR, resolution="fixed")
    app.citizen_dispute(folio, opened.access_token, comment="Sigue el hoyo")
    app.reopen(folio, SUPERVISOR, reason="El ciudadano indica que sigue")
    app.close_report(folio, SUPERVISOR, resolution="fixed")
    app.citizen_confirm(folio, opened.access_token, comment="Ahora sí")
    other = app.open_report(
        service_code="bache", service_name="Bache", department="obras_publicas",
        description="El mismo bache", location={"address": "Av. Universidad 100"},
        actor=OPERATOR).folio
    app.mark_duplicate(other, SUPERVISOR, duplicate_of=folio)
    convert = CloudEventConverter(app)
    events = [convert(n) for n in app.recorder.select_notifications(1, 1000)]
    app.close()
    return events, opened.access_token


def test_every_event_type_of_the_catalogue_is_published(published):
    events, _ = published
    assert {short_name(e.type) for e in events} == set(SCHEMAS)


def test_every_published_event_loads_through_its_schema_in_shared(published):
    events, _ = published
    for event in events:
        load_data(short_name(event.type), event.data)  # raises ValidationError on a break
        assert event.data["folio"] == event.subject
        assert event.data["version"] == event.extensions["streamversion"]


def test_nothing_private_goes_on_the_bus(published):
    events, token = published
    text = "".join(e.to_json().decode() for e in events)
    assert token not in text
    assert "access_token" not in text
    assert "nota interna" not in text
    assert "Gracias por reportar" in text  # public comments do travel
