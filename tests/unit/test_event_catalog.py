"""One catalog, one state machine: the report's events as shared/contracts lists them match the
domain's, and the views walk the lifecycle exactly as the aggregate does."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from eventsourcing.domain import event
from marshmallow import fields

from services.tracking import domainmodel
from services.tracking.domainmodel import EVENT_NAMES, Actor, Report, event_name, wire_name
from services.tracking.read.open311 import public_entries
from services.tracking.read.timeline import evolve, new_row, render_timeline
from services.tracking.write.outgoing import CloudEventConverter
from shared.contracts import events
from shared.contracts.events import CATALOG, LANGUAGES, EventType, Label, ReportEventData
from shared.contracts.lifecycle import FIRST_STEP, LIFECYCLE, STATUS, STEPS, step_after

OPERATOR = Actor(id="operadora-ana-070", role="operator", channel="phone_070")
SUPERVISOR = Actor(id="supervisor-obras-luis", role="supervisor", channel="staff")
CREW = Actor(id="cuadrillero-pedro", role="crew", channel="field", crew_id="C-07")
OTHER_CREW = Actor(id="cuadrillera-rosa", role="crew", channel="field", crew_id="C-09")
CITIZEN = Actor(id="citizen:QRO-2026-000123", role="citizen", channel="web")


def a_pothole(cls: type[Report] = Report, folio: str = "QRO-2026-000123") -> Report:
    return cls(folio=folio, service_code="bache", service_name="Bache", department="obras",
               description="Bache profundo", location={"lat": 20.59, "long": -100.39},
               attributes={}, media_urls=[], due_at=None, access_token_hash="0" * 64,
               actor=OPERATOR)


def every_kind_of_step() -> list:
    """One report's stream through every event type, reopened and closed again."""
    report = a_pothole()
    report.add_photo(CITIZEN, "https://fotos.example/1.jpg", "", "report", None, None)
    report.triage(SUPERVISOR, "obras", "high", "bache")
    report.assign(SUPERVISOR, "C-07")
    report.dispatch_crew(CREW, "s-1", None)
    report.set_en_route(CREW, "s-2", None)
    report.triage(SUPERVISOR, "obras", "urgent", "bache")  # moves nobody already on the way
    report.arrive(CREW, "s-3", None)
    report.log_materials(CREW, [{"code": "asfalto-frio", "quantity": 2}], "s-4", None)
    report.complete_work(CREW, "Listo", "s-5", None)
    report.add_comment(SUPERVISOR, "Revisar en 30 días", "internal")
    report.citizen_dispute(CITIZEN, "Quedó un hoyo")
    report.close(SUPERVISOR, "not_fixed", "")
    report.reopen(SUPERVISOR, "Llegó el material")
    report.triage(SUPERVISOR, "obras", "high", "bache")
    report.assign(SUPERVISOR, "C-09")
    report.dispatch_crew(OTHER_CREW, "s-6", None)
    report.arrive(OTHER_CREW, "s-7", None)
    report.complete_work(OTHER_CREW, "Ahora sí", "s-8", None)
    report.close(SUPERVISOR, "fixed", "")
    report.citizen_confirm(CITIZEN, "Gracias")
    report.reopen(SUPERVISOR, "Era otro bache")
    report.mark_duplicate(SUPERVISOR, "QRO-2026-000045")
    return report.collect_events()


# ---- one catalog ---------------------------------------------------------------------------------


def test_every_domain_event_has_a_catalog_entry_and_every_entry_a_domain_event():
    assert set(EVENT_NAMES.values()) == set(CATALOG)
    assert {wire_name(e) for e in every_kind_of_step()} == set(CATALOG)


@pytest.mark.parametrize("class_name, wire", [
    ("Opened", "opened"), ("CrewDispatched", "crew_dispatched"),
    ("CrewEnRoute", "crew_en_route"), ("MarkedDuplicate", "marked_duplicate"),
    ("CitizenDisputed", "citizen_disputed")])
def test_a_wire_name_follows_from_the_event_class_by_one_rule(class_name, wire):
    assert event_name(class_name) == wire


def test_stored_events_keep_their_class_path():
    # Stored events record this topic; a rename would orphan every stream already written.
    assert {f"{type(e).__module__}:{type(e).__qualname__}" for e in every_kind_of_step()} == {
        f"services.tracking.domainmodel:Report.{cls}" for cls in EVENT_NAMES}


@pytest.mark.parametrize("name", CATALOG)
def test_each_entry_names_its_type_its_labels_and_only_fields_its_schema_has(name):
    entry = CATALOG[name]
    assert entry.name == name and re.fullmatch(r"[a-z]+(_[a-z]+)*", name)
    assert entry.type == events.event_type(name) == f"mx.expediente.report.{name}"
    assert all(events.label(name, language) for language in LANGUAGES)
    assert entry.summary
    assert isinstance(entry.schema, ReportEventData)
    assert set(entry.public + entry.private) <= set(entry.schema.fields), "unknown field"
    assert not set(entry.public) & set(entry.private)
    for secret in ("actor", "step_id", "notes", "reason", "access_token_hash"):
        assert secret not in entry.public + entry.private


def test_the_labels_cover_the_domains_steps_and_resolutions():
    assert set(events.STEPS) == set(STEPS)
    assert set(events.RESOLUTIONS) == set(domainmodel.RESOLUTIONS)
    assert events.STEP_LABELS["on_site"] == "Cuadrilla en el sitio"
    assert events.RESOLUTIONS["fixed"].en == "Fixed"


# ---- one state machine ---------------------------------------------------------------------------


def test_the_lifecycle_speaks_of_catalog_events_and_domain_steps():
    assert set(LIFECYCLE) <= set(CATALOG)
    for rule in LIFECYCLE.values():
        assert set(rule.allowed_in) <= set(STEPS) and set(rule.moves_from) <= set(STEPS)
        assert rule.moves_to is None or rule.moves_to in STEPS
    assert set(STATUS.values()) == {"open", "closed"}


def test_the_view_walks_the_lifecycle_step_by_step_as_the_aggregate_does():
    stream = every_kind_of_step()
    report, row = None, None
    open311_step = FIRST_STEP
    for domain_event in stream:
        name = wire_name(domain_event)
        report = domain_event.mutate(report)
        if name == "opened":
            row = new_row(domain_event)
        evolve(row, name, domain_event)
        open311_step = step_after(open311_step, name)
        assert (row["step"], row["status"]) == (report.step, report.status), name
        assert open311_step == report.step
    assert (row["resolution"], row["duplicate_of"]) == (report.resolution, report.duplicate_of)
    assert row["crew_id"] is report.crew_id is None


def test_open311_takes_each_updates_status_from_the_lifecycle():
    stream = every_kind_of_step()
    row = new_row(stream[0])
    for domain_event in stream:
        evolve(row, wire_name(domain_event), domain_event)
    entries = json.loads(row["timeline"])
    keyed = public_entries(row["folio"], entries, "")
    steps = {item["type"]: step for _, _, _, step, item in keyed}
    assert steps["closed"] == steps["marked_duplicate"] == "closed"
    assert steps["reopened"] == "reopened" and STATUS[steps["reopened"]] == "open"
    assert steps["crew_arrived"] == "on_site"


# ---- adding an event type ------------------------------------------------------------------------


class InspectionScheduledData(ReportEventData):
    inspection_on = fields.Date(required=True)
    inspector = fields.String(required=True)


class InspectedReport(Report):
    """A report that a supervisor may also schedule an inspection of: one command, one event."""

    def schedule_inspection(self, actor: Actor, inspection_on, inspector: str) -> None:
        self._require("inspection_scheduled", "schedule an inspection")
        self._inspection_scheduled(actor=actor, inspection_on=inspection_on,
                                   inspector=inspector)

    @event("InspectionScheduled")
    def _inspection_scheduled(self, actor: Actor, inspection_on, inspector: str) -> None:
        self.inspection_on = inspection_on


def test_a_new_event_type_is_one_catalog_entry_and_one_domain_method(monkeypatch):
    entry = EventType("inspection_scheduled", InspectionScheduledData(),
                      Label("Inspección programada", "Inspection scheduled"),
                      "A supervisor scheduled an inspection of the site.",
                      public=("inspection_on",))
    monkeypatch.setitem(CATALOG, entry.name, entry)
    report = a_pothole(InspectedReport)
    report.schedule_inspection(SUPERVISOR, datetime(2026, 12, 3, tzinfo=UTC).date(), "Ing. Ruiz")
    opened, scheduled = report.collect_events()

    assert wire_name(scheduled) == "inspection_scheduled"
    converter = CloudEventConverter(app=None)
    converter.convert(opened)
    published = converter.convert(scheduled)
    assert published.type == "mx.expediente.report.inspection_scheduled"
    assert published.data["inspection_on"] == "2026-12-03"
    row = new_row(opened)
    evolve(row, "opened", opened)
    evolve(row, "inspection_scheduled", scheduled)
    assert row["step"] == "opened"  # no LIFECYCLE rule: it happens in any open step, moves none
    public = render_timeline(json.loads(row["timeline"]), "public")[-1]
    assert public == {"type": "inspection_scheduled", "label": "Inspección programada",
                      "at": public["at"], "actor_role": "supervisor",
                      "inspection_on": "2026-12-03"}
    assert "Ing. Ruiz" not in str(public)  # not public: the catalog did not say so


def test_a_field_made_public_in_the_catalog_shows_in_the_public_timeline(monkeypatch):
    stream = every_kind_of_step()
    row = new_row(stream[0])
    for domain_event in stream:
        evolve(row, wire_name(domain_event), domain_event)
    entries = json.loads(row["timeline"])
    assert "Llegó el material" not in str(render_timeline(entries, "public"))
    reopened = CATALOG["reopened"]
    monkeypatch.setitem(CATALOG, "reopened", replace(reopened, public=("reason",)))
    assert "Llegó el material" in str(render_timeline(entries, "public"))
