"""Rebuilding the report views from the events gives exactly the views the live projector kept,
on the embedded SQLite store and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from services.tracking.domainmodel import Actor
from services.tracking.read.projection import ReportProjector, rebuild_command
from services.tracking.write.application import TrackingApplication

pytestmark = pytest.mark.integration

OPERATOR = Actor(id="operador-070-1", role="operator", channel="phone_070")
CLERK = Actor(id="ventanilla-3", role="operator", channel="window")
SUPERVISOR = Actor(id="supervisora-obras", role="supervisor", channel="staff")
CREWS = {
    "C-01": Actor(id="cuadrilla-uno-ana", role="crew", channel="field", crew_id="C-01"),
    "C-02": Actor(id="cuadrilla-dos-beto", role="crew", channel="field", crew_id="C-02"),
}
PLACES = [
    {"lat": 20.5930, "long": -100.3920, "address": "Centro"},
    {"lat": 20.7060, "long": -100.4470, "address": "Juriquilla"},
    {"lat": 20.6200, "long": -100.4100},
    {"address": "Calle Hidalgo 5, Santa Rosa Jáuregui"},
]


@pytest.fixture
def app(store_env):
    app = TrackingApplication(env=store_env)
    yield app
    app.close()


def run_the_city(app: TrackingApplication, projector: ReportProjector) -> list[str]:
    """A morning of reports through every step, the live projector catching up as it goes."""
    folios, tokens = [], {}

    def step(*commands):
        for command in commands:
            command()
        assert projector.lag() > 0
        projector.catch_up(batch_size=3)
        assert projector.lag() == 0

    for n, place in enumerate(PLACES):
        opened = app.open_report(
            service_code="bache" if n % 2 == 0 else "luminaria",
            service_name="Bache" if n % 2 == 0 else "Luminaria apagada",
            department="obras" if n % 2 == 0 else "alumbrado",
            description=f"Reporte número {n}", location=place, sla_hours=48 + n,
            media_urls=[f"https://fotos.example/{n}.jpg"], actor=OPERATOR if n else CLERK,
        )
        folios.append(opened.folio)
        tokens[opened.folio] = opened.access_token
        step()
    fixed, disputed, duplicate, waiting = folios

    for folio, crew_id in ((fixed, "C-01"), (disputed, "C-02")):
        crew = CREWS[crew_id]
        step(lambda f=folio: app.triage(f, SUPERVISOR, department="obras", priority="urgent",
                                        service_code="bache"),
             lambda f=folio, c=crew_id: app.assign(f, SUPERVISOR, crew_id=c))
        step(lambda f=folio, c=crew: app.dispatch_crew(f, c, step_id=f"{f}-1"),
             lambda f=folio, c=crew: app.set_en_route(f, c, step_id=f"{f}-2"),
             lambda f=folio, c=crew: app.arrive(f, c, step_id=f"{f}-3"))
        step(lambda f=folio, c=crew: app.add_photo(f, c, url=f"https://fotos.example/{f}.jpg",
                                                   caption="Después", stage="after"),
             lambda f=folio, c=crew: app.log_materials(
                 f, c, items=[{"code": "asfalto", "quantity": 2.5, "unit": "saco",
                               "description": "Asfalto frío"}]),
             lambda f=folio, c=crew: app.complete_work(f, c, notes="Sin novedad"))
    step(lambda: app.close_report(fixed, SUPERVISOR, resolution="fixed", notes="OK"),
         lambda: app.add_comment(fixed, SUPERVISOR, text="Gracias por reportar"),
         lambda: app.add_comment(fixed, SUPERVISOR, text="Factura 88 pendiente",
                                 visibility="internal"),
         lambda: app.citizen_confirm(fixed, tokens[fixed], comment="Quedó muy bien"))
    step(lambda: app.close_report(disputed, SUPERVISOR, resolution="fixed"),
         lambda: app.add_comment(disputed, OPERATOR, text="Vecina llamó de nuevo",
                                 visibility="private"),
         lambda: app.citizen_dispute(disputed, tokens[disputed], comment="Sigue igual"))
    step(lambda: app.reopen(disputed, SUPERVISOR, reason="La vecina dice que sigue igual"),
         lambda: app.assign(disputed, SUPERVISOR, crew_id="C-01"))
    step(lambda: app.mark_duplicate(duplicate, CLERK, duplicate_of=fixed))
    step(lambda: app.triage(waiting, SUPERVISOR, department="alumbrado", priority="low",
                            service_code="luminaria"))
    return folios


def snapshot(projector: ReportProjector, folios: list[str]) -> dict:
    views = {
        folio: (projector.public_view(folio), projector.private_view(folio),
                projector.staff_view(folio))
        for folio in folios
    }
    searches = [
        projector.search(),
        projector.search(status="open", order="updated_at asc"),
        projector.search(status="closed", department="obras"),
        projector.search(crew_id="C-01"),
        projector.search(steps=["closed", "triaged"], service_codes=["bache", "luminaria"]),
        projector.search(bbox=(20.5, -100.5, 20.65, -100.3)),
        projector.search(folios=folios[:2], order="opened_at asc", limit=1, offset=1),
    ]
    counts = {by: projector.counts(by=by) for by in ("step", "department", "status")}
    return {"views": views, "searches": searches, "counts": counts}


def test_a_rebuild_gives_exactly_the_views_the_live_projector_kept(app):
    projector = ReportProjector(app)
    folios = run_the_city(app, projector)
    live = snapshot(projector, folios)
    events = app.recorder.max_notification_id()

    assert projector.rebuild() == events
    assert projector.lag() == 0
    assert snapshot(projector, folios) == live

    for folio in folios:  # the views agree with the aggregates they follow
        report, staff = app.get_report(folio), live["views"][folio][2]
        assert (staff["step"], staff["status"], staff["crew_id"], staff["resolution"],
                staff["duplicate_of"], staff["citizen_feedback"], staff["version"]) == (
            report.step, "closed" if report.is_closed else "open", report.crew_id,
            report.resolution, report.duplicate_of, report.citizen_feedback, report.version)
    assert live["counts"]["status"] == {"closed": 2, "open": 2}
    fixed = live["views"][folios[0]][0]
    assert [e["type"] for e in fixed["timeline"]][-4:] == [
        "work_completed", "closed", "comment_added", "citizen_confirmed"]
    reopened = live["views"][folios[1]][2]
    assert (reopened["step"], reopened["crew_id"]) == ("assigned", "C-01")


def test_a_rebuild_from_the_command_line_while_the_service_keeps_projecting(app, store_env):
    live = ReportProjector(app)
    folios = run_the_city(app, live)
    expected = snapshot(live, folios)

    # Another process (the CLI) rebuilds while this one keeps catching up: they share the
    # position, so neither applies a batch twice and the views end up the same.
    other = TrackingApplication(env=store_env)
    try:
        rebuilder = ReportProjector(other)
        threads = [threading.Thread(target=rebuilder.rebuild, kwargs={"batch_size": 4})]
        threads += [threading.Thread(target=live.catch_up, kwargs={"batch_size": 2})
                    for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        live.catch_up()
        assert snapshot(live, folios) == expected
        assert snapshot(rebuilder, folios) == expected
        assert live.lag() == rebuilder.lag() == 0
    finally:
        other.close()


def test_the_operator_command_reports_how_fast_it_rebuilt(app, store_env):
    projector = ReportProjector(app)
    folios = run_the_city(app, projector)
    expected = snapshot(projector, folios)

    result = rebuild_command(store_env)

    assert result["events"] == app.recorder.max_notification_id()
    assert result["seconds"] >= 0 and set(result) == {"events", "seconds", "events_per_second"}
    assert snapshot(projector, folios) == expected
