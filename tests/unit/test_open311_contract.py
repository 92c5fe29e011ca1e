"""The Open311 rows tracking answers intake, against shared/contracts/open311.py: real rows from
tracking's view go through the contract's schemas, and intake writes its documents from them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.intake.open311.documents import request_document, updates_document
from services.tracking.domainmodel import Actor
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from shared.contracts.open311 import (
    REQUEST_FIELDS,
    UPDATE_FIELDS,
    Open311Request,
    Open311Update,
)

OPERATOR = Actor(id="operadora-ana-070", role="operator", channel="phone_070")
SUPERVISOR = Actor(id="supervisor-obras-luis", role="supervisor", channel="staff")
CREW = Actor(id="cuadrillero-pedro", role="crew", channel="field", crew_id="C-07")
QUERETARO = ZoneInfo("America/Mexico_City")


@pytest.fixture
def projector(sqlite_env):
    """Reports in every Open311 shape: fixed and closed, a duplicate, one open with a photo
    and no coordinates."""
    app = TrackingApplication(env=sqlite_env)

    def pothole(**location):
        return app.open_report(
            service_code="bache", service_name="Bache", department="obras",
            description="Bache frente a la escuela", sla_hours=72, actor=OPERATOR,
            location=location or {"lat": 20.59, "long": -100.39}).folio

    fixed, copy, waiting = pothole(), pothole(), pothole(address="Calle Hidalgo 5")
    app.assign(fixed, SUPERVISOR, crew_id="C-07")
    app.dispatch_crew(fixed, CREW)
    app.arrive(fixed, CREW)
    app.add_photo(fixed, CREW, url="https://fotos.example/despues.jpg", stage="after")
    app.complete_work(fixed, CREW, notes="Rellenado")
    app.close_report(fixed, SUPERVISOR, resolution="fixed")
    app.mark_duplicate(copy, SUPERVISOR, duplicate_of=fixed)
    app.add_photo(waiting, OPERATOR, url="https://fotos.example/bache.jpg", stage="report")
    projector = ReportProjector(app)
    projector.catch_up()
    yield projector
    app.close()


def test_every_request_row_has_exactly_the_contracts_fields_and_goes_through_it(projector):
    rows = projector.open311_requests()

    assert len(rows) == 3
    for row in rows:
        assert tuple(row) == REQUEST_FIELDS
        assert Open311Request().load(Open311Request().dump(row)) == row  # unknown fields refused
    by_status = {(r["status"], r["resolution"]): r for r in rows}
    assert by_status["closed", "duplicate"]["status_notes"].startswith("Cerrado: Duplicado")
    assert by_status["open", None]["media_url"] == "https://fotos.example/bache.jpg"


def test_every_update_row_has_exactly_the_contracts_fields_and_goes_through_it(projector):
    rows = projector.open311_updates(datetime(2000, 1, 1, tzinfo=UTC), limit=1000)

    assert len(rows) == 11
    for row in rows:
        assert tuple(row) == UPDATE_FIELDS
        assert Open311Update().load(Open311Update().dump(row)) == row
    assert [r["external_status_code"] for r in rows if r["status"] == "closed"] == [
        "closed", "closed"]
    assert {r["external_status_code"] for r in rows} >= {"opened", "assigned", "on_site"}


def test_intake_writes_the_spec_documents_from_the_contract_rows(projector):
    requests = [request_document(row, QUERETARO, None) for row in projector.open311_requests()]
    updates = updates_document(
        projector.open311_updates(datetime(2000, 1, 1, tzinfo=UTC), limit=1000), QUERETARO, None)

    closed = next(r for r in requests if r["extended_attributes"]["resolution"] == "fixed")
    assert closed["status"] == "closed" and closed["status_notes"] == "Cerrado: Resuelto"
    assert closed["agency_responsible"] == "obras"
    assert closed["requested_datetime"].endswith("-06:00")
    assert closed["extended_attributes"]["step_label"] == "Cerrado"
    assert [u["external_status_code"] for u in updates][:2] == ["opened", "opened"]
    assert all(u["service_request_id"] for u in updates)


def test_intake_reads_a_row_from_a_tracking_without_a_newer_field_as_empty(projector):
    row = dict(projector.open311_requests()[0])
    del row["resolution_label"]
    row["added_by_a_newer_tracking"] = "x"

    document = request_document(row, QUERETARO, None)

    assert document["extended_attributes"]["resolution_label"] is None
    assert "added_by_a_newer_tracking" not in str(document)
