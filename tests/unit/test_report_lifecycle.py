"""The life of one report, told as the municipality lives it: every step a report can take, and
every step the rules refuse. Domain objects only: no broker, no database."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from functools import reduce
from uuid import uuid5

import pytest

from services.tracking.domainmodel import (
    REPORT_NAMESPACE,
    RESOLUTIONS,
    Actor,
    DomainError,
    InvalidCommand,
    InvalidTransition,
    NotAssignedCrew,
    Report,
    ReportClosed,
    report_id,
    wire_name,
)

FOLIO = "QRO-2026-000123"
OTHER_FOLIO = "QRO-2026-000045"

OPERATOR = Actor(id="operadora-ana-070", role="operator", channel="phone_070")
SUPERVISOR = Actor(id="supervisor-obras-luis", role="supervisor", channel="staff")
ADMIN = Actor(id="admin-sistemas", role="admin", channel="staff")
CREW = Actor(id="cuadrillero-pedro", role="crew", channel="field", crew_id="C-07")
OTHER_CREW = Actor(id="cuadrillera-rosa", role="crew", channel="field", crew_id="C-09")
CITIZEN = Actor(id=f"citizen:{FOLIO}", role="citizen", channel="web")

AT = datetime.now(UTC) + timedelta(hours=1)  # when the crews say a step happened: after opening
ASPHALT = [{"code": "asfalto-frio", "quantity": 3, "unit": "saco"}]
FINAL_RESOLUTIONS = [r for r in RESOLUTIONS if r != "duplicate"]


# ---- how reports get to where a story starts ----------------------------------------------------


def a_pothole(folio: str = FOLIO, actor: Actor = OPERATOR) -> Report:
    """The 070 line takes a call about a pothole in front of the school."""
    return Report(
        folio=folio,
        service_code="bache",
        service_name="Bache",
        department="obras",
        description="Bache profundo frente a la escuela",
        location={"lat": 20.5930, "long": -100.3920, "address": "Av. Juárez 10, Centro"},
        attributes={"profundidad": "mucha"},
        media_urls=["https://fotos.example/bache.jpg"],
        due_at=None,
        access_token_hash="0" * 64,
        actor=actor,
    )


def assigned(crew_id: str = "C-07") -> Report:
    report = a_pothole()
    report.triage(SUPERVISOR, department="obras", priority="high", service_code="bache")
    report.assign(SUPERVISOR, crew_id)
    return report


def dispatched() -> Report:
    report = assigned()
    report.dispatch_crew(CREW, "paso-1", AT)
    return report


def en_route() -> Report:
    report = dispatched()
    report.set_en_route(CREW, "paso-2", AT)
    return report


def on_site() -> Report:
    report = en_route()
    report.arrive(CREW, "paso-3", AT)
    return report


def work_completed() -> Report:
    report = on_site()
    report.complete_work(CREW, "Se rellenó con asfalto frío", "paso-4", AT)
    return report


def closed(resolution: str = "fixed") -> Report:
    report = work_completed()
    report.close(SUPERVISOR, resolution, "Revisado por el supervisor")
    return report


def marked_duplicate() -> Report:
    report = a_pothole()
    report.mark_duplicate(SUPERVISOR, OTHER_FOLIO)
    return report


def settled(report: Report) -> Report:
    """Forget the events that brought the report here, so a story sees only its own."""
    report.collect_events()
    return report


def new_events(report: Report) -> list[str]:
    return [wire_name(e) for e in report.collect_events()]


def refused(report: Report, error: type[DomainError], command) -> DomainError:
    """The command is refused with `error`, and the report neither changes nor records anything."""
    settled(report)
    before = deepcopy(vars(report))
    with pytest.raises(error) as raised:
        command(report)
    assert report.collect_events() == []
    assert vars(report) == before
    return raised.value


# ---- opening ------------------------------------------------------------------------------------


def test_a_call_to_070_opens_a_report_under_its_folio():
    report = a_pothole()

    assert new_events(report) == ["opened"]
    assert report.folio == FOLIO
    assert report.step == "opened"
    assert report.priority == "normal"
    assert report.channel == "phone_070"
    assert report.crew_id is None and report.resolution is None
    assert report.version == 1


def test_the_folio_alone_finds_the_report_stream():
    report = a_pothole()

    assert report.id == report_id(FOLIO) == uuid5(REPORT_NAMESPACE, FOLIO)
    assert report_id(FOLIO) == report_id(FOLIO)
    assert a_pothole(OTHER_FOLIO).id == report_id(OTHER_FOLIO) != report.id


# ---- triage and assignment ----------------------------------------------------------------------


def test_a_supervisor_triages_a_report_into_a_department_and_priority():
    report = settled(a_pothole())

    report.triage(SUPERVISOR, department="alumbrado", priority="urgent", service_code="luminaria")

    assert new_events(report) == ["triaged"]
    assert (report.step, report.department, report.priority, report.service_code) == (
        "triaged", "alumbrado", "urgent", "luminaria")


def test_a_priority_the_municipality_does_not_use_is_refused():
    refused(a_pothole(), InvalidCommand,
            lambda r: r.triage(SUPERVISOR, "obras", "para-ayer", "bache"))


def test_a_closed_report_cannot_be_triaged():
    refused(closed(), ReportClosed, lambda r: r.triage(SUPERVISOR, "obras", "high", "bache"))


def test_a_supervisor_assigns_a_crew():
    report = settled(a_pothole())

    report.assign(SUPERVISOR, "C-07")

    assert new_events(report) == ["assigned"]
    assert (report.step, report.crew_id) == ("assigned", "C-07")


def test_an_assignment_needs_a_crew():
    refused(a_pothole(), InvalidCommand, lambda r: r.assign(SUPERVISOR, ""))


@pytest.mark.parametrize("walk", [assigned, dispatched, en_route], ids=lambda w: w.__name__)
def test_a_crew_that_has_not_reached_the_site_can_still_be_replaced(walk):
    report = settled(walk())

    report.assign(SUPERVISOR, "C-09")

    assert new_events(report) == ["assigned"]
    assert (report.step, report.crew_id) == ("assigned", "C-09")
    refused(report, NotAssignedCrew, lambda r: r.dispatch_crew(CREW, None, AT))
    report.dispatch_crew(OTHER_CREW, None, AT)
    assert report.step == "dispatched"


@pytest.mark.parametrize("walk", [on_site, work_completed], ids=lambda w: w.__name__)
def test_a_crew_on_site_cannot_be_reassigned(walk):
    refused(walk(), InvalidTransition, lambda r: r.assign(SUPERVISOR, "C-09"))


def test_a_closed_report_cannot_be_assigned():
    refused(closed(), ReportClosed, lambda r: r.assign(SUPERVISOR, "C-09"))


# ---- the crew in the field ----------------------------------------------------------------------


def test_the_assigned_crew_is_dispatched():
    report = settled(assigned())

    report.dispatch_crew(CREW, "paso-1", AT)

    assert new_events(report) == ["crew_dispatched"]
    assert report.step == "dispatched"


def test_the_dispatched_crew_sets_out_en_route():
    report = settled(dispatched())

    report.set_en_route(CREW, "paso-2", AT)

    assert new_events(report) == ["crew_en_route"]
    assert report.step == "en_route"


def test_the_crew_arrives_after_driving_en_route():
    report = settled(en_route())

    report.arrive(CREW, "paso-3", AT)

    assert new_events(report) == ["crew_arrived"]
    assert report.step == "on_site"


def test_a_crew_that_was_already_close_arrives_straight_from_dispatch():
    report = settled(dispatched())

    report.arrive(CREW, "paso-3", AT)

    assert new_events(report) == ["crew_arrived"]
    assert report.step == "on_site"


def test_the_crew_photographs_the_work_before_and_after():
    report = settled(on_site())

    report.add_photo(CREW, "https://fotos.example/antes.jpg", "Antes", "before", "paso-5", AT)
    report.add_photo(CREW, "https://fotos.example/despues.jpg", "Después", "after", None, AT)

    assert new_events(report) == ["photo_added", "photo_added"]
    assert report.photos == [
        {"url": "https://fotos.example/antes.jpg", "caption": "Antes", "stage": "before"},
        {"url": "https://fotos.example/despues.jpg", "caption": "Después", "stage": "after"},
    ]
    assert report.step == "on_site"


@pytest.mark.parametrize("actor", [OPERATOR, CITIZEN], ids=["operator", "citizen"])
def test_the_person_reporting_may_add_a_photo_of_the_problem(actor):
    report = settled(a_pothole())

    report.add_photo(actor, "https://fotos.example/bache-2.jpg", "", "report", None, None)

    assert new_events(report) == ["photo_added"]


def test_a_photo_needs_its_url_and_a_known_stage():
    refused(on_site(), InvalidCommand, lambda r: r.add_photo(CREW, "", "", "after", None, AT))
    refused(on_site(), InvalidCommand,
            lambda r: r.add_photo(CREW, "https://fotos.example/x.jpg", "", "selfie", None, AT))


def test_the_crew_on_site_logs_the_materials_it_used():
    report = settled(on_site())

    report.log_materials(CREW, ASPHALT, "paso-6", AT)

    assert new_events(report) == ["materials_logged"]
    assert report.materials == ASPHALT


def test_materials_forgotten_on_site_may_still_be_logged_once_the_work_is_done():
    report = settled(work_completed())

    report.log_materials(CREW, [{"code": "pintura-trafico", "quantity": 0.5}], None, AT)

    assert new_events(report) == ["materials_logged"]


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"quantity": 2}],
        [{"code": "", "quantity": 2}],
        [{"code": "asfalto-frio"}],
        [{"code": "asfalto-frio", "quantity": 0}],
        [{"code": "asfalto-frio", "quantity": -3}],
        [{"code": "asfalto-frio", "quantity": 1}, {"code": "grava", "quantity": 0}],
    ],
    ids=["nothing", "no-code", "empty-code", "no-quantity", "zero", "negative", "one-bad-line"],
)
def test_materials_need_a_code_and_a_positive_quantity(items):
    refused(on_site(), InvalidCommand, lambda r: r.log_materials(CREW, items, None, AT))


@pytest.mark.parametrize("walk", [assigned, dispatched, en_route], ids=lambda w: w.__name__)
def test_materials_are_logged_only_by_a_crew_on_site(walk):
    refused(walk(), InvalidTransition, lambda r: r.log_materials(CREW, ASPHALT, None, AT))


def test_the_crew_on_site_completes_the_work():
    report = settled(on_site())

    report.complete_work(CREW, "Se rellenó con asfalto frío", "paso-7", AT)

    assert new_events(report) == ["work_completed"]
    assert report.step == "work_completed"
    assert not report.is_closed


@pytest.mark.parametrize("walk", [assigned, dispatched, en_route], ids=lambda w: w.__name__)
def test_work_cannot_be_completed_before_the_crew_arrives(walk):
    refused(walk(), InvalidTransition, lambda r: r.complete_work(CREW, "", None, AT))


def test_a_crew_that_was_not_assigned_cannot_mark_arrival():
    error = refused(en_route(), NotAssignedCrew, lambda r: r.arrive(OTHER_CREW, None, AT))
    assert "C-09" in str(error)


def test_no_crew_arrives_before_being_dispatched():
    refused(assigned(), InvalidTransition, lambda r: r.arrive(CREW, None, AT))


def test_no_crew_is_en_route_before_being_dispatched():
    refused(assigned(), InvalidTransition, lambda r: r.set_en_route(CREW, None, AT))


def test_no_crew_is_dispatched_before_being_assigned():
    refused(settled(a_pothole()), NotAssignedCrew, lambda r: r.dispatch_crew(CREW, None, AT))
    refused(settled(a_pothole()), InvalidTransition,
            lambda r: r.dispatch_crew(SUPERVISOR, None, AT))


@pytest.mark.parametrize("step", ["dispatch_crew", "set_en_route", "arrive", "add_photo",
                                  "log_materials", "complete_work"])
def test_a_step_synced_late_cannot_have_happened_before_the_report_was_opened(step):
    walk = {"dispatch_crew": assigned, "set_en_route": dispatched, "arrive": en_route}.get(
        step, on_site)
    report = walk()
    before_opening = report.created_on - timedelta(minutes=1)
    naive = datetime(2026, 12, 1, 9, 30)
    args = {"add_photo": ("https://fotos.example/1.jpg", "", "after"),
            "log_materials": (ASPHALT,), "complete_work": ("",)}.get(step, ())

    error = refused(report, InvalidCommand,
                    lambda r: getattr(r, step)(CREW, *args, None, before_opening))
    assert "before the report was opened" in str(error)
    refused(report, InvalidCommand, lambda r: getattr(r, step)(CREW, *args, None, naive))
    getattr(report, step)(CREW, *args, None, report.created_on)  # the same moment will do


def test_a_crew_is_not_dispatched_twice():
    refused(dispatched(), InvalidTransition, lambda r: r.dispatch_crew(CREW, None, AT))


FIELD_STEPS = {
    "dispatch": (assigned, lambda r, a: r.dispatch_crew(a, None, AT)),
    "en_route": (dispatched, lambda r, a: r.set_en_route(a, None, AT)),
    "arrive": (en_route, lambda r, a: r.arrive(a, None, AT)),
    "photo": (on_site, lambda r, a: r.add_photo(a, "https://f.example/1.jpg", "", "after",
                                                None, AT)),
    "materials": (on_site, lambda r, a: r.log_materials(a, ASPHALT, None, AT)),
    "complete": (on_site, lambda r, a: r.complete_work(a, "", None, AT)),
}


@pytest.mark.parametrize("step", FIELD_STEPS)
def test_another_crew_cannot_move_the_assigned_crews_steps(step):
    walk, command = FIELD_STEPS[step]
    refused(walk(), NotAssignedCrew, lambda r: command(r, OTHER_CREW))


@pytest.mark.parametrize("step", [s for s in FIELD_STEPS if s != "photo"])
@pytest.mark.parametrize("actor", [OPERATOR, CITIZEN], ids=["operator", "citizen"])
def test_only_a_crew_moves_field_steps_not_an_operator_or_a_citizen(step, actor):
    walk, command = FIELD_STEPS[step]
    refused(walk(), NotAssignedCrew, lambda r: command(r, actor))


@pytest.mark.parametrize("actor", [SUPERVISOR, ADMIN], ids=["supervisor", "admin"])
def test_a_supervisor_may_override_the_field_steps_for_a_crew_without_signal(actor):
    report = settled(assigned())

    for _, command in FIELD_STEPS.values():
        command(report, actor)

    assert new_events(report) == [
        "crew_dispatched", "crew_en_route", "crew_arrived", "photo_added", "materials_logged",
        "work_completed",
    ]
    assert report.step == "work_completed"
    assert report.crew_id == "C-07"


@pytest.mark.parametrize("step", FIELD_STEPS)
def test_no_field_step_is_taken_on_a_closed_report(step):
    _, command = FIELD_STEPS[step]
    refused(closed("cancelled"), ReportClosed, lambda r: command(r, CREW))
    refused(closed("cancelled"), ReportClosed, lambda r: command(r, SUPERVISOR))


# ---- closing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", FINAL_RESOLUTIONS)
def test_a_supervisor_closes_a_report_with_an_honest_resolution(resolution):
    report = settled(a_pothole())

    report.close(SUPERVISOR, resolution, "Notas del cierre")

    assert new_events(report) == ["closed"]
    assert report.is_closed
    assert (report.step, report.resolution) == ("closed", resolution)


def test_a_fixed_pothole_is_closed_after_the_work():
    report = settled(work_completed())

    report.close(SUPERVISOR, "fixed", "")

    assert new_events(report) == ["closed"]
    assert report.resolution == "fixed"


def test_a_report_is_not_closed_twice():
    refused(closed(), ReportClosed, lambda r: r.close(SUPERVISOR, "not_fixed", ""))


def test_an_unknown_resolution_is_refused():
    refused(a_pothole(), InvalidCommand, lambda r: r.close(SUPERVISOR, "resuelto", ""))


def test_closing_as_duplicate_must_go_through_mark_duplicate():
    error = refused(a_pothole(), InvalidCommand, lambda r: r.close(SUPERVISOR, "duplicate", ""))
    assert "mark_duplicate" in str(error)


# ---- duplicates ---------------------------------------------------------------------------------


def test_a_second_call_about_the_same_pothole_is_marked_duplicate_of_the_first():
    report = settled(a_pothole())

    report.mark_duplicate(SUPERVISOR, OTHER_FOLIO)

    assert new_events(report) == ["marked_duplicate"]
    assert report.is_closed
    assert (report.resolution, report.duplicate_of) == ("duplicate", OTHER_FOLIO)


def test_a_report_is_not_a_duplicate_of_itself():
    refused(a_pothole(), InvalidCommand, lambda r: r.mark_duplicate(SUPERVISOR, FOLIO))


@pytest.mark.parametrize("original", ["", "123", "qro-2026-000045", "QRO-26-000045",
                                      "QRO-2026-45", "el de ayer"])
def test_a_duplicate_points_at_a_real_folio(original):
    refused(a_pothole(), InvalidCommand, lambda r: r.mark_duplicate(SUPERVISOR, original))


def test_a_closed_report_is_not_marked_duplicate():
    refused(closed(), ReportClosed, lambda r: r.mark_duplicate(SUPERVISOR, OTHER_FOLIO))
    refused(marked_duplicate(), ReportClosed, lambda r: r.close(SUPERVISOR, "cancelled", ""))


# ---- reopening ----------------------------------------------------------------------------------


def test_a_closed_report_is_reopened_with_a_reason_and_loses_its_crew():
    report = settled(closed())

    report.reopen(SUPERVISOR, "El bache volvió a abrirse con la lluvia")

    assert new_events(report) == ["reopened"]
    assert not report.is_closed
    assert report.step == "reopened"
    assert report.crew_id is None
    assert report.resolution is None and report.citizen_feedback is None
    refused(report, NotAssignedCrew, lambda r: r.dispatch_crew(CREW, None, AT))


def test_a_reopened_report_is_triaged_and_assigned_again():
    report = closed()
    report.reopen(SUPERVISOR, "Sigue el bache")
    settled(report)

    report.triage(SUPERVISOR, "obras", "urgent", "bache")
    report.assign(SUPERVISOR, "C-09")
    report.dispatch_crew(OTHER_CREW, None, AT)

    assert new_events(report) == ["triaged", "assigned", "crew_dispatched"]
    assert report.crew_id == "C-09"


def test_a_report_marked_duplicate_by_mistake_is_reopened_and_forgets_the_original():
    report = marked_duplicate()

    report.reopen(SUPERVISOR, "No era el mismo bache")

    assert (report.resolution, report.duplicate_of) == (None, None)


def test_reopening_needs_a_reason():
    refused(closed(), InvalidCommand, lambda r: r.reopen(SUPERVISOR, ""))


@pytest.mark.parametrize("walk", [a_pothole, assigned, on_site, work_completed],
                         ids=lambda w: w.__name__)
def test_only_a_closed_report_is_reopened(walk):
    refused(walk(), InvalidTransition, lambda r: r.reopen(SUPERVISOR, "Por si acaso"))


# ---- comments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "private", "internal"])
def test_staff_leave_comments_of_every_visibility(visibility):
    report = settled(a_pothole())

    report.add_comment(SUPERVISOR, "La cuadrilla va mañana", visibility)

    assert new_events(report) == ["comment_added"]


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_the_citizen_comments_in_public_or_privately(visibility):
    report = settled(a_pothole())

    report.add_comment(CITIZEN, "Sigue ahí el bache", visibility)

    assert new_events(report) == ["comment_added"]


def test_citizens_cannot_write_internal_notes():
    refused(a_pothole(), InvalidCommand,
            lambda r: r.add_comment(CITIZEN, "Nota interna falsa", "internal"))


@pytest.mark.parametrize("text", ["", "   ", "\n\t"], ids=["empty", "spaces", "blank-lines"])
def test_an_empty_comment_is_refused(text):
    refused(a_pothole(), InvalidCommand, lambda r: r.add_comment(SUPERVISOR, text, "public"))


def test_a_comment_has_a_known_visibility():
    refused(a_pothole(), InvalidCommand, lambda r: r.add_comment(SUPERVISOR, "Hola", "secreta"))


def test_the_conversation_goes_on_after_the_report_is_closed():
    report = settled(closed())

    report.add_comment(CITIZEN, "Gracias, quedó muy bien", "public")

    assert new_events(report) == ["comment_added"]


# ---- the citizen's word -------------------------------------------------------------------------


@pytest.mark.parametrize("walk", [work_completed, closed], ids=lambda w: w.__name__)
def test_the_citizen_confirms_the_pothole_was_really_fixed(walk):
    report = settled(walk())

    report.citizen_confirm(CITIZEN, "Quedó muy bien")

    assert new_events(report) == ["citizen_confirmed"]
    assert report.citizen_feedback == "confirmed"


@pytest.mark.parametrize("walk", [work_completed, closed], ids=lambda w: w.__name__)
def test_the_citizen_disputes_work_that_did_not_fix_the_problem(walk):
    report = settled(walk())

    report.citizen_dispute(CITIZEN, "El bache sigue igual")

    assert new_events(report) == ["citizen_disputed"]
    assert report.citizen_feedback == "disputed"


def test_a_dispute_says_what_is_still_wrong():
    refused(closed(), InvalidCommand, lambda r: r.citizen_dispute(CITIZEN, "  "))


@pytest.mark.parametrize("walk", [a_pothole, assigned, dispatched, en_route, on_site],
                         ids=lambda w: w.__name__)
def test_the_citizen_gives_their_word_only_on_finished_work(walk):
    refused(walk(), InvalidTransition, lambda r: r.citizen_confirm(CITIZEN, ""))
    refused(walk(), InvalidTransition, lambda r: r.citizen_dispute(CITIZEN, "No han venido"))


def test_the_citizen_gives_their_word_once_per_closure():
    report = closed()
    report.citizen_confirm(CITIZEN, "Bien")

    refused(report, InvalidTransition, lambda r: r.citizen_confirm(CITIZEN, "Muy bien"))
    refused(report, InvalidTransition, lambda r: r.citizen_dispute(CITIZEN, "Mejor no"))


def test_after_a_reopening_the_citizen_judges_the_new_closure():
    report = closed()
    report.citizen_dispute(CITIZEN, "Se volvió a abrir")
    report.reopen(SUPERVISOR, "El ciudadano reporta que sigue el bache")
    report.close(SUPERVISOR, "fixed", "Segunda visita")
    settled(report)

    report.citizen_confirm(CITIZEN, "Ahora sí")

    assert new_events(report) == ["citizen_confirmed"]


def test_a_duplicate_is_followed_on_its_original_folio():
    refused(marked_duplicate(), InvalidTransition, lambda r: r.citizen_confirm(CITIZEN, ""))
    refused(marked_duplicate(), InvalidTransition,
            lambda r: r.citizen_dispute(CITIZEN, "No lo arreglaron"))


# ---- what every event says, and what the stream can rebuild -------------------------------------


def the_whole_story() -> Report:
    """A report through every kind of step, as one stream of events."""
    report = a_pothole()
    report.add_photo(CITIZEN, "https://fotos.example/bache-2.jpg", "De noche", "report", None,
                     None)
    report.triage(SUPERVISOR, "obras", "high", "bache")
    report.assign(SUPERVISOR, "C-07")
    report.dispatch_crew(CREW, "paso-1", AT)
    report.set_en_route(CREW, "paso-2", AT)
    report.arrive(CREW, "paso-3", AT)
    report.add_photo(CREW, "https://fotos.example/antes.jpg", "Antes", "before", "paso-4", AT)
    report.log_materials(CREW, ASPHALT, "paso-5", AT)
    report.complete_work(CREW, "Listo", "paso-6", AT)
    report.add_comment(SUPERVISOR, "Factura 88 pendiente", "internal")
    report.add_comment(CITIZEN, "Gracias", "private")
    report.citizen_dispute(CITIZEN, "Quedó un hoyo en la orilla")
    report.close(SUPERVISOR, "not_fixed", "Falta material")
    report.reopen(SUPERVISOR, "Llegó el material")
    report.assign(SUPERVISOR, "C-09")
    report.dispatch_crew(OTHER_CREW, "paso-7", AT)
    report.arrive(OTHER_CREW, "paso-8", AT)
    report.complete_work(OTHER_CREW, "Ahora sí", "paso-9", AT)
    report.close(SUPERVISOR, "fixed", "")
    report.citizen_confirm(CITIZEN, "Perfecto")
    return report


def test_every_event_records_who_did_it_in_which_role_and_through_which_channel():
    events = the_whole_story().collect_events()

    assert len(events) == 21
    for domain_event in events:
        actor = domain_event.actor
        assert isinstance(actor, Actor), wire_name(domain_event)
        assert actor.id and actor.role and actor.channel
    assert [(e.actor.id, e.actor.role, e.actor.channel) for e in events[:3]] == [
        ("operadora-ana-070", "operator", "phone_070"),
        (f"citizen:{FOLIO}", "citizen", "web"),
        ("supervisor-obras-luis", "supervisor", "staff"),
    ]
    assert events[4].actor.crew_id == "C-07"


def test_the_stream_replayed_from_the_start_rebuilds_the_same_report():
    report = the_whole_story()
    events = report.collect_events()

    rebuilt = reduce(lambda aggregate, e: e.mutate(aggregate), events, None)

    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert isinstance(rebuilt, Report)
    assert rebuilt == report
    assert (rebuilt.id, rebuilt.version, rebuilt.step, rebuilt.resolution) == (
        report_id(FOLIO), 21, "closed", "fixed")
    assert (rebuilt.crew_id, rebuilt.citizen_feedback) == ("C-09", "confirmed")
    assert len(rebuilt.photos) == 2 and rebuilt.materials == ASPHALT


def test_every_command_remembers_the_clients_key_and_so_does_the_replayed_stream():
    report = a_pothole()
    report.triage(SUPERVISOR, "obras", "high", "bache", "k-1")
    report.assign(SUPERVISOR, "C-07", "k-2")
    report.add_comment(SUPERVISOR, "Vamos mañana", "public", "k-3")
    report.close(SUPERVISOR, "fixed", "", "k-4")
    report.citizen_dispute(CITIZEN, "Sigue igual", "k-5")
    report.reopen(SUPERVISOR, "Sigue el bache", "k-6")
    report.mark_duplicate(SUPERVISOR, OTHER_FOLIO, "k-7")
    keys = {f"k-{n}" for n in range(1, 8)}

    assert report.step_ids == keys
    rebuilt = reduce(lambda aggregate, e: e.mutate(aggregate), report.collect_events(), None)
    assert rebuilt.step_ids == keys and rebuilt.has_step("k-4")


def test_a_field_step_remembers_the_crews_client_step_id():
    report = on_site()

    assert report.has_step("paso-3")
    assert report.has_step("paso-1") and report.has_step("paso-2")
    assert not report.has_step("paso-99")
    assert not report.has_step(None)

    report.log_materials(CREW, ASPHALT, "paso-10", AT)
    report.complete_work(CREW, "", None, AT)

    assert report.has_step("paso-10")
    assert report.step_ids == {"paso-1", "paso-2", "paso-3", "paso-10"}
