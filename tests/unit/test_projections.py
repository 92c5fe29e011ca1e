"""The report views: what the citizen, the citizen with the token, and staff read of a report."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import pytest

from services.tracking.domainmodel import Actor
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication, hash_token

OPERATOR = Actor(id="operadora-ana-070", role="operator", channel="phone_070")
SUPERVISOR = Actor(id="supervisor-obras-luis", role="supervisor", channel="staff")
CREW = Actor(id="cuadrillero-pedro", role="crew", channel="field", crew_id="C-07")

CENTRO = {"lat": 20.5930, "long": -100.3920, "address": "Av. Juárez 10, Centro"}
JURIQUILLA = {"lat": 20.7060, "long": -100.4470, "address": "Blvd. Juriquilla 200"}


@pytest.fixture
def app(sqlite_env):
    app = TrackingApplication(env=sqlite_env)
    yield app
    app.close()


@pytest.fixture
def projector(app):
    return ReportProjector(app)


def open_pothole(app, location=CENTRO, **overrides):
    fields = dict(service_code="bache", service_name="Bache", department="obras",
                  description="Bache profundo frente a la escuela", location=location,
                  media_urls=["https://fotos.example/bache.jpg"], sla_hours=72, actor=OPERATOR)
    fields.update(overrides)
    return app.open_report(**fields)


def fix(app, folio):
    """A supervisor assigns crew C-07, which goes, arrives, documents and finishes the job."""
    app.triage(folio, SUPERVISOR, department="obras", priority="high", service_code="bache")
    app.assign(folio, SUPERVISOR, crew_id="C-07")
    app.dispatch_crew(folio, CREW, step_id="s1")
    app.set_en_route(folio, CREW, step_id="s2")
    app.arrive(folio, CREW, step_id="s3")
    app.add_photo(folio, CREW, url="https://fotos.example/antes.jpg", caption="Antes",
                  stage="before", step_id="s4")
    app.log_materials(folio, CREW, items=[{"code": "asfalto-frio", "quantity": 3, "unit": "saco"}],
                      step_id="s5")
    app.complete_work(folio, CREW, notes="Se rellenó con asfalto frío; revisar en 30 días",
                      step_id="s6")


def test_the_citizen_follows_every_step_in_spanish(app, projector):
    opened = open_pothole(app)
    fix(app, opened.folio)
    app.close_report(opened.folio, SUPERVISOR, resolution="fixed", notes="Cerrado por Luis")
    projector.catch_up()

    view = projector.public_view(opened.folio)

    assert view["folio"] == opened.folio
    assert view["service"] == {"code": "bache", "name": "Bache"}
    assert (view["status"], view["step"], view["step_label"]) == ("closed", "closed", "Cerrado")
    assert (view["resolution"], view["resolution_label"]) == ("fixed", "Resuelto")
    assert view["location"] == CENTRO
    assert view["media_urls"] == ["https://fotos.example/bache.jpg"]
    assert [(e["type"], e["label"]) for e in view["timeline"]] == [
        ("opened", "Reporte recibido"),
        ("triaged", "Reporte clasificado"),
        ("assigned", "Asignado a una cuadrilla"),
        ("crew_dispatched", "La cuadrilla salió"),
        ("crew_en_route", "La cuadrilla va en camino"),
        ("crew_arrived", "La cuadrilla llegó"),
        ("photo_added", "Foto agregada"),
        ("materials_logged", "Materiales registrados"),
        ("work_completed", "Trabajo terminado"),
        ("closed", "Reporte cerrado"),
    ]
    by_type = {e["type"]: e for e in view["timeline"]}
    assert by_type["assigned"]["crew_id"] == "C-07"
    assert by_type["crew_arrived"]["actor_role"] == "crew"
    assert by_type["photo_added"]["url"] == "https://fotos.example/antes.jpg"
    assert by_type["photo_added"]["caption"] == "Antes"
    assert by_type["materials_logged"]["items"][0]["code"] == "asfalto-frio"
    assert by_type["closed"]["resolution_label"] == "Resuelto"
    assert view["photos"][0]["url"] == "https://fotos.example/antes.jpg"
    assert view["materials"][0]["quantity"] == 3
    for stamp in (view["opened_at"], view["updated_at"], view["due_at"], view["closed_at"],
                  *(e["at"] for e in view["timeline"])):
        assert datetime.fromisoformat(stamp).tzinfo is not None
    assert datetime.fromisoformat(view["due_at"]) - datetime.fromisoformat(
        view["opened_at"]) == pytest.approx(timedelta(hours=72), abs=timedelta(seconds=5))
    json.dumps(view)  # ready for the wire as it is


def test_a_field_step_synced_late_shows_when_it_happened(app, projector):
    opened = open_pothole(app)
    # The crew set out as soon as it was assigned, without signal; its phone synced later.
    earlier = app.assign(opened.folio, SUPERVISOR, crew_id="C-07").modified_on
    app.dispatch_crew(opened.folio, CREW, step_id="offline-1", occurred_at=earlier)
    projector.catch_up()

    dispatched = projector.staff_view(opened.folio)["timeline"][-1]
    assert datetime.fromisoformat(dispatched["at"]) == earlier
    assert datetime.fromisoformat(dispatched["recorded_at"]) > earlier
    assert projector.public_view(opened.folio)["step_label"] == "Cuadrilla en salida"


def test_the_public_view_never_shows_personal_data_or_internal_notes(app, projector):
    opened = open_pothole(app)
    folio = opened.folio
    fix(app, folio)
    app.add_comment(folio, SUPERVISOR, text="Vamos a volver el lunes", visibility="public")
    app.add_comment(folio, OPERATOR, text="Llamó la Sra. Pérez al 442 555 0101",
                    visibility="private")
    app.add_comment(folio, SUPERVISOR, text="El contratista cobra de más", visibility="internal")
    app.citizen_dispute(folio, opened.access_token, comment="Sigue el hoyo junto a mi casa")
    projector.catch_up()

    public = json.dumps(projector.public_view(folio), ensure_ascii=False)
    private = json.dumps(projector.private_view(folio), ensure_ascii=False)
    staff = json.dumps(projector.staff_view(folio), ensure_ascii=False)

    assert "Vamos a volver el lunes" in public
    for secret in ("442 555 0101", "El contratista", "Sigue el hoyo", "operadora-ana",
                   "supervisor-obras-luis", "cuadrillero-pedro", f"citizen:{folio}",
                   "revisar en 30 días", "step_id", hash_token(opened.access_token),
                   opened.access_token):
        assert secret not in public
    assert "442 555 0101" in private and "Sigue el hoyo" in private
    for secret in ("El contratista", "operadora-ana", hash_token(opened.access_token)):
        assert secret not in private
    for internal in ("El contratista", "operadora-ana", "revisar en 30 días", "442 555 0101"):
        assert internal in staff
    assert hash_token(opened.access_token) not in staff
    labels = [e["label"] for e in projector.public_view(folio)["timeline"]]
    assert labels.count("Comentario") == 1
    assert labels[-1] == "El ciudadano indicó que no quedó resuelto"


def test_a_duplicate_points_to_its_original_and_a_reopened_report_is_open_again(app, projector):
    original = open_pothole(app)
    copy = open_pothole(app)
    app.mark_duplicate(copy.folio, OPERATOR, duplicate_of=original.folio)
    app.close_report(original.folio, SUPERVISOR, resolution="not_our_responsibility")
    projector.catch_up()

    duplicate = projector.public_view(copy.folio)
    assert (duplicate["status"], duplicate["resolution"], duplicate["resolution_label"]) == (
        "closed", "duplicate", "Duplicado")
    assert duplicate["duplicate_of"] == original.folio
    assert duplicate["timeline"][-1]["label"] == "Marcado como duplicado"
    assert projector.public_view(original.folio)["resolution_label"] == (
        "No es competencia del municipio")

    app.reopen(original.folio, SUPERVISOR, reason="Sí es calle municipal")
    projector.catch_up()
    reopened = projector.public_view(original.folio)
    assert (reopened["status"], reopened["step"], reopened["step_label"]) == (
        "open", "reopened", "Reabierto")
    assert reopened["resolution"] is None and reopened["closed_at"] is None
    assert reopened["timeline"][-1]["label"] == "Reporte reabierto"
    assert "Sí es calle municipal" not in json.dumps(reopened, ensure_ascii=False)
    assert "Sí es calle municipal" in json.dumps(projector.staff_view(original.folio),
                                                 ensure_ascii=False)


def test_unknown_folios_have_no_view(projector):
    assert projector.public_view("QRO-2026-999999") is None
    assert projector.private_view("QRO-2026-999999") is None
    assert projector.staff_view("QRO-2026-999999") is None
    assert projector.search(folios=["QRO-2026-999999"]) == []


def test_staff_search_reports_by_status_department_crew_place_and_date(app, projector):
    before = datetime.now().astimezone() - timedelta(seconds=1)
    centro = open_pothole(app)
    juriquilla = open_pothole(app, location=JURIQUILLA)
    lamp = open_pothole(app, service_code="luminaria", service_name="Luminaria apagada",
                        department="alumbrado")
    fix(app, centro.folio)
    app.close_report(centro.folio, SUPERVISOR, resolution="fixed")
    projector.catch_up()

    def folios(**filters):
        return {row["folio"] for row in projector.search(**filters)}

    everything = {centro.folio, juriquilla.folio, lamp.folio}
    assert folios() == everything
    assert folios(status="open") == {juriquilla.folio, lamp.folio}
    assert folios(status="closed") == {centro.folio}
    assert folios(department="alumbrado") == {lamp.folio}
    assert folios(crew_id="C-07") == {centro.folio}
    assert folios(service_codes=["luminaria"]) == {lamp.folio}
    assert folios(service_codes=[]) == set()
    assert folios(steps=["opened", "triaged"]) == {juriquilla.folio, lamp.folio}
    assert folios(folios=[lamp.folio, centro.folio]) == {lamp.folio, centro.folio}
    assert folios(bbox=(20.70, -100.45, 20.71, -100.44)) == {juriquilla.folio}
    assert folios(opened_from=before, opened_to=datetime.now().astimezone()) == everything
    assert folios(opened_from=juriquilla.opened_at) == {juriquilla.folio, lamp.folio}
    assert folios(opened_to=centro.opened_at.isoformat()) == {centro.folio}
    assert folios(opened_to=before) == set()
    assert folios(updated_since=datetime.now().astimezone() + timedelta(minutes=1)) == set()

    newest_first = [row["folio"] for row in projector.search()]
    assert newest_first == [lamp.folio, juriquilla.folio, centro.folio]
    assert [row["folio"] for row in projector.search(order="opened_at asc", limit=1,
                                                     offset=1)] == [juriquilla.folio]
    row = projector.search(folios=[centro.folio])[0]
    assert (row["step_label"], row["resolution_label"], row["crew_id"]) == (
        "Cerrado", "Resuelto", "C-07")
    assert "timeline" not in row and "description" not in row


def test_search_refuses_what_it_does_not_know(projector):
    with pytest.raises(ValueError):
        projector.search(order="opened_at; DROP TABLE report_views")
    with pytest.raises(ValueError):
        projector.search(status="pending")
    with pytest.raises(ValueError):
        projector.search(limit=0)
    with pytest.raises(ValueError):
        projector.counts(by="description")
    assert projector.search(department="obras' OR '1'='1") == []


def test_counts_for_the_operations_dashboard(app, projector):
    done = open_pothole(app)
    open_pothole(app)
    open_pothole(app, department="alumbrado")
    app.close_report(done.folio, SUPERVISOR, resolution="no_action_needed")
    projector.catch_up()

    assert projector.counts(by="status") == {"closed": 1, "open": 2}
    assert projector.counts(by="step") == {"closed": 1, "opened": 2}
    assert projector.counts(by="department") == {"alumbrado": 1, "obras": 2}
    assert projector.counts(by="department", status="open") == {"alumbrado": 1, "obras": 1}


def test_lag_counts_what_the_views_have_not_seen(app, projector):
    assert projector.lag() == 0
    opened = open_pothole(app)
    app.assign(opened.folio, SUPERVISOR, crew_id="C-07")
    assert projector.lag() == 2
    assert projector.catch_up(batch_size=1) == 2
    assert projector.lag() == 0
    assert projector.position() == app.recorder.max_notification_id()
    assert projector.catch_up() == 0


def test_workers_catching_up_at_once_apply_each_event_once(app, projector):
    folios = [open_pothole(app).folio for _ in range(3)]
    for folio in folios:
        fix(app, folio)
    workers = [threading.Thread(target=projector.catch_up, kwargs={"batch_size": 2})
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert projector.lag() == 0
    for folio in folios:
        timeline = projector.staff_view(folio)["timeline"]
        assert [e["version"] for e in timeline] == list(range(1, 10))


def test_a_save_wakes_the_projector_loop(app):
    projector = ReportProjector(app, poll_interval=60.0)
    follower = projector.follower
    app.saved_listeners.append(follower.wake.set)
    loop = threading.Thread(target=follower.run, daemon=True)
    loop.start()
    try:
        opened = open_pothole(app)
        assert _eventually(lambda: projector.public_view(opened.folio) is not None)
    finally:
        follower.stop()
        loop.join(10)
    assert not loop.is_alive()


def test_the_projector_loop_survives_a_failed_round_and_parks_nothing(app, caplog, monkeypatch):
    projector = ReportProjector(app, poll_interval=0.01)
    handle, rounds = projector.handle, []

    def database_away_once(tx, notifications):
        rounds.append(len(notifications))
        if len(rounds) == 1:
            raise ConnectionError("database went away")
        handle(tx, notifications)

    monkeypatch.setattr(projector, "handle", database_away_once)
    opened = open_pothole(app)
    loop = threading.Thread(target=projector.follower.run, daemon=True)
    loop.start()
    try:
        assert _eventually(lambda: projector.public_view(opened.folio) is not None)
    finally:
        projector.follower.stop()
        loop.join(10)
    assert "database went away" in caplog.text
    assert len(rounds) >= 2 and projector.follower.failures() == []


def _eventually(condition, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False
