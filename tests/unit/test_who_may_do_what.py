"""Who may do what, as stories of the municipality: crews act on their own jobs, a token that
names a department stays in it whatever role it acts in, and the check is made on the report
that is saved, not on one read a moment before (docs/access.md)."""

from __future__ import annotations

import pytest

from services.tracking import access
from services.tracking.domainmodel import Actor, NotAssignedCrew
from services.tracking.read.projection import ReportProjector
from services.tracking.write import commands
from services.tracking.write.application import TrackingApplication
from shared.chassis.auth import Forbidden, Principal, authorize

OPERATOR = Actor("operadora-ana", "operator", "phone_070")
CITY = Principal("supervisora-general", ("supervisor",))
OBRAS = Principal("supervisor-obras", ("supervisor",), department="obras")
OBRAS_AND_070 = Principal("luis", ("supervisor", "operator"), department="obras")
CREW_1 = Principal("cuadrillero-uno", ("crew",), crew_id="C-01")
CREW_2 = Principal("cuadrillera-dos", ("crew",), crew_id="C-02")
AUDITOR = Principal("auditora", ("auditor",))
CLERK = Principal("cajera", ("billing_clerk",))


class Caller:
    """What a door hands the command table: the verified principal, roles checked as the
    chassis checks them."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def require(self, *roles: str) -> Principal:
        return authorize(self.principal, roles)


@pytest.fixture
def app():
    app = TrackingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def run(app, principal, name, folio, payload):
    return commands.execute(app, Caller(principal), name, folio, payload)


def a_report(app, department="obras", crew_id="C-01") -> str:
    folio = app.open_report(service_code="bache", service_name="Bache", department=department,
                            description="Bache frente al mercado",
                            location={"lat": 20.59, "long": -100.39}, actor=OPERATOR).folio
    if crew_id:
        run(app, CITY, "assign", folio, {"crew_id": crew_id})
    return folio


def test_a_crew_cannot_comment_on_another_crews_report(app):
    folio = a_report(app, crew_id="C-01")
    before = app.get_report(folio).version

    with pytest.raises(NotAssignedCrew):  # not_assigned_crew: 403
        run(app, CREW_2, "add_comment", folio, {"text": "Ya pasamos", "visibility": "public"})

    assert app.get_report(folio).version == before
    assert run(app, CREW_1, "add_comment", folio, {"text": "Vamos mañana"}).version == before + 1


def test_a_crew_that_was_not_assigned_gets_403_even_on_a_closed_report(app):
    folio = a_report(app, crew_id="C-01")
    run(app, CITY, "close_report", folio, {"resolution": "no_action_needed"})

    with pytest.raises(NotAssignedCrew):  # the scope first: not the report's state (409)
        run(app, CREW_2, "arrive", folio, {})


def test_a_crew_writes_no_internal_note_it_could_not_read(app):
    folio = a_report(app, crew_id="C-01")
    with pytest.raises(Forbidden):
        run(app, CREW_1, "add_comment", folio, {"text": "Nota", "visibility": "internal"})
    assert run(app, CREW_1, "add_comment", folio,
               {"text": "Tocamos y nadie abrió", "visibility": "private"}).version == 3


def test_a_supervisor_who_is_also_an_operator_stays_in_their_department(app):
    lights = a_report(app, department="alumbrado", crew_id=None)
    before = app.get_report(lights).version

    for name, payload in (("add_comment", {"text": "Revisar"}),
                          ("mark_duplicate", {"duplicate_of": a_report(app)}),
                          ("add_photo", {"url": "https://fotos.example/poste.jpg"})):
        with pytest.raises(Forbidden, match="alumbrado"):
            run(app, OBRAS_AND_070, name, lights, payload)
    assert app.get_report(lights).version == before

    works = a_report(app, department="obras", crew_id=None)
    assert run(app, OBRAS_AND_070, "add_comment", works, {"text": "Revisar"}).version == 2


def test_a_report_triaged_to_another_department_between_check_and_save_is_refused(app):
    folio = a_report(app, department="obras", crew_id=None)
    loaded = app.get_report
    rival = {"done": False}

    def load_while_another_supervisor_triages(wanted):
        report = loaded(wanted)
        if not rival["done"]:  # our copy is now stale: the rival saves first
            rival["done"] = True
            run(app, CITY, "triage", folio,
                {"department": "alumbrado", "priority": "high", "service_code": "luminaria"})
        return report

    app.get_report = load_while_another_supervisor_triages
    with pytest.raises(Forbidden, match="alumbrado"):
        run(app, OBRAS, "close_report", folio, {"resolution": "cancelled"})
    app.get_report = loaded

    report = app.get_report(folio)
    assert (report.department, report.status, report.version) == ("alumbrado", "open", 2)


def test_a_department_token_opens_reports_of_its_department_only():
    access.check_open(OBRAS, "obras")
    access.check_open(CITY, "alumbrado")
    with pytest.raises(Forbidden):
        access.check_open(OBRAS_AND_070, "alumbrado")


def test_a_crew_reads_its_own_job_without_internal_notes_and_no_other(sqlite_env):
    app = TrackingApplication(env=sqlite_env)
    try:
        own, other = a_report(app, crew_id="C-01"), a_report(app, crew_id="C-02")
        for folio in (own, other):
            run(app, CITY, "add_comment", folio, {"text": "Nota interna", "visibility": "internal"})
            run(app, CITY, "add_comment", folio, {"text": "Le llamamos", "visibility": "private"})
        projector = ReportProjector(app)
        projector.catch_up()

        crew_view = access.staff_view_for(CREW_1, projector.staff_view(own))
        assert "Le llamamos" in str(crew_view) and "Nota interna" not in str(crew_view)
        assert "Nota interna" in str(access.staff_view_for(AUDITOR, projector.staff_view(own)))
        with pytest.raises(NotAssignedCrew):
            access.staff_view_for(CREW_1, projector.staff_view(other))
        with pytest.raises(Forbidden):
            access.staff_view_for(OBRAS, {**projector.staff_view(other),
                                          "department": "alumbrado"})
    finally:
        app.close()


def test_a_crew_searches_its_own_jobs_and_a_department_its_own_reports():
    assert access.search_filters(CREW_1, {"status": "open", "crew_id": None}) == {
        "status": "open", "crew_id": "C-01"}
    assert access.search_filters(OBRAS, {"department": None})["department"] == "obras"
    assert access.search_filters(CLERK, {"department": "agua"}) == {"department": "agua"}
    with pytest.raises(Forbidden):
        access.search_filters(CREW_1, {"crew_id": "C-02"})
    with pytest.raises(Forbidden):
        access.search_filters(OBRAS_AND_070, {"department": "alumbrado"})
