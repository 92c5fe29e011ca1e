"""The Open311 view: other systems filter the reports and read public facts only (SQLite, PG)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.tracking.domainmodel import Actor
from services.tracking.read import projection as projections
from services.tracking.read.projection import ReportProjector
from services.tracking.write.application import TrackingApplication
from shared.contracts.events import CATALOG

pytestmark = pytest.mark.integration

OPERATOR = Actor(id="operadora-ana-070", role="operator", channel="phone_070")
SUPERVISOR = Actor(id="supervisor-obras-luis", role="supervisor", channel="staff")
CREW = Actor(id="cuadrillero-pedro", role="crew", channel="field", crew_id="C-07")
CENTRO = {"lat": 20.5930, "long": -100.3920, "address": "Av. Juárez 10, Centro"}
JURIQUILLA = {"lat": 20.7060, "long": -100.4470, "address": "Blvd. Juriquilla 200"}
SANTA_ROSA = {"address": "Calle Hidalgo 5, Santa Rosa Jáuregui"}
AROUND_CENTRO = (20.55, -100.42, 20.62, -100.36)
SECRETS = ("Factura 88 pendiente con el proveedor", "Mi vecino Juan Pérez tel 442 123 4567",
           "Sin novedad, revisar en 30 días", "Cerrado tras llamada con la señora Pérez",
           "No quedó bien, sigue el hoyo")
OPEN311_KEYS = {
    "folio", "service_code", "service_name", "status", "step", "step_label", "resolution",
    "resolution_label", "department", "description", "address", "lat", "long", "opened_at",
    "updated_at", "due_at", "closed_at", "media_url", "status_notes",
}


@pytest.fixture
def app(store_env):
    app = TrackingApplication(env=store_env)
    yield app
    app.close()


@pytest.fixture
def projector(app):
    return ReportProjector(app)


def open_report(app, code="bache", location=CENTRO, media=()):
    name = {"bache": "Bache", "luminaria": "Luminaria apagada", "fuga": "Fuga de agua"}[code]
    return app.open_report(
        service_code=code, service_name=name, department="obras",
        description=f"{name} frente a la escuela", location=location,
        media_urls=list(media), sla_hours=72, actor=OPERATOR).folio


def fix(app, folio, photo=True):
    """Crew C-07 goes, documents the job and finishes it; a supervisor closes it as fixed."""
    app.assign(folio, SUPERVISOR, crew_id="C-07")
    app.dispatch_crew(folio, CREW)
    app.arrive(folio, CREW)
    if photo:
        app.add_photo(folio, CREW, url=f"https://fotos.example/{folio}.jpg", caption="Después",
                      stage="after")
    app.complete_work(folio, CREW, notes=SECRETS[2])
    app.close_report(folio, SUPERVISOR, resolution="fixed", notes=SECRETS[3])


def folios_of(found):
    return [request["folio"] for request in found]


def test_other_systems_filter_the_citys_reports_by_service_status_place_and_date(app, projector):
    bache_centro = open_report(app, "bache", CENTRO)
    luminaria = open_report(app, "luminaria", CENTRO)
    bache_juriquilla = open_report(app, "bache", JURIQUILLA)
    fuga = open_report(app, "fuga", SANTA_ROSA)
    fix(app, bache_centro)
    projector.catch_up()

    assert folios_of(projector.open311_requests()) == [fuga, bache_juriquilla, luminaria,
                                                        bache_centro]
    assert folios_of(projector.open311_requests(order="opened_at asc"))[0] == bache_centro
    assert set(folios_of(projector.open311_requests(service_codes=["bache"]))) == {
        bache_centro, bache_juriquilla}
    assert set(folios_of(projector.open311_requests(service_codes=["bache", "fuga"]))) == {
        bache_centro, bache_juriquilla, fuga}
    assert projector.open311_requests(service_codes=[]) == []
    assert folios_of(projector.open311_requests(status="closed")) == [bache_centro]
    assert bache_centro not in folios_of(projector.open311_requests(status="open"))
    assert set(folios_of(projector.open311_requests(bbox=AROUND_CENTRO))) == {
        bache_centro, luminaria}
    assert folios_of(projector.open311_requests(folios=[fuga, "QRO-1999-000001"])) == [fuga]
    assert folios_of(projector.open311_requests(
        service_codes=["bache"], status="open", bbox=AROUND_CENTRO)) == []

    opened = {r["folio"]: r["opened_at"] for r in projector.open311_requests()}
    window = projector.open311_requests(opened_from=opened[luminaria],
                                        opened_to=opened[bache_juriquilla])
    assert folios_of(window) == [bache_juriquilla, luminaria]
    later = datetime.now(UTC) + timedelta(days=1)
    assert projector.open311_requests(opened_from=later) == []
    assert folios_of(projector.open311_requests(
        updated_since=projector.open311_requests(folios=[bache_centro])[0]["updated_at"],
    )) == [bache_centro]
    assert folios_of(projector.open311_requests(limit=2, offset=1)) == [bache_juriquilla,
                                                                      luminaria]
    with pytest.raises(ValueError):
        projector.open311_requests(status="abierto")


def test_a_request_shows_public_facts_in_spanish_and_never_notes_actors_or_tokens(app,
                                                                                  projector):
    folio = open_report(app, "bache", CENTRO, media=["https://fotos.example/ciudadano.jpg"])
    token = app.open_report(
        service_code="fuga", service_name="Fuga de agua", department="agua",
        description="Fuga en la banqueta", location=SANTA_ROSA, actor=OPERATOR).access_token
    app.add_comment(folio, SUPERVISOR, text=SECRETS[0], visibility="internal")
    app.add_comment(folio, SUPERVISOR, text=SECRETS[1], visibility="private")
    app.add_comment(folio, SUPERVISOR, text="Gracias por reportar", visibility="public")
    fix(app, folio)
    projector.catch_up()

    [request] = projector.open311_requests(folios=[folio])
    assert set(request) == OPEN311_KEYS
    assert request["media_url"] == "https://fotos.example/ciudadano.jpg"
    assert request["address"] == CENTRO["address"] and request["lat"] == CENTRO["lat"]
    assert (request["status"], request["step"], request["step_label"]) == (
        "closed", "closed", "Cerrado")
    assert (request["resolution"], request["resolution_label"]) == ("fixed", "Resuelto")
    assert request["status_notes"] == "Cerrado: Resuelto"
    assert request["closed_at"] is not None

    everything = json.dumps(
        [projector.open311_requests(limit=1000),
         projector.open311_updates(datetime(2000, 1, 1, tzinfo=UTC), limit=1000)],
        ensure_ascii=False)
    for secret in (*SECRETS, token, OPERATOR.id, SUPERVISOR.id, CREW.id, "phone_070"):
        assert secret not in everything
    assert "Gracias por reportar" in everything


def test_a_request_without_media_shows_the_crews_first_photo(app, projector):
    folio = open_report(app, "luminaria", JURIQUILLA)
    projector.catch_up()
    [request] = projector.open311_requests()
    assert (request["media_url"], request["status_notes"]) == (None, "Recibido")
    fix(app, folio)
    projector.catch_up()
    assert projector.open311_requests()[0]["media_url"] == f"https://fotos.example/{folio}.jpg"


def test_status_notes_follow_a_duplicate_and_a_reopening(app, projector):
    original, copy = open_report(app), open_report(app)
    app.mark_duplicate(copy, SUPERVISOR, duplicate_of=original)
    fix(app, original, photo=False)
    app.reopen(original, SUPERVISOR, reason="El ciudadano dice que sigue el hoyo")
    projector.catch_up()

    requests = {r["folio"]: r for r in projector.open311_requests()}
    assert requests[copy]["status_notes"] == f"Cerrado: Duplicado; folio original {original}"
    assert (requests[original]["status"], requests[original]["status_notes"]) == (
        "open", "Reabierto")
    assert requests[original]["resolution"] is None


def test_close_notes_reach_the_status_notes_only_once_the_public_timeline_shows_them(
        app, projector, monkeypatch):
    folio = open_report(app)
    fix(app, folio, photo=False)
    projector.catch_up()
    assert projector.open311_requests()[0]["status_notes"] == "Cerrado: Resuelto"
    closed = CATALOG["closed"]
    monkeypatch.setitem(CATALOG, "closed", replace(closed, public=(*closed.public, "notes")))
    assert projector.open311_requests()[0]["status_notes"] == f"Cerrado: Resuelto; {SECRETS[3]}"


def test_updates_since_a_moment_are_the_public_entries_after_it_oldest_first(app, projector):
    folio = open_report(app, "bache", CENTRO)
    projector.catch_up()
    since = projector.open311_requests()[0]["opened_at"]
    app.add_comment(folio, SUPERVISOR, text=SECRETS[0], visibility="internal")
    fix(app, folio)
    app.add_comment(folio, SUPERVISOR, text="Gracias por reportar")
    app.reopen(folio, SUPERVISOR, reason="Sigue el hoyo")
    other = open_report(app, "luminaria", JURIQUILLA)
    projector.catch_up()

    updates = projector.open311_updates(since)
    assert [u["description"] for u in updates] == [
        "Asignado a una cuadrilla", "La cuadrilla salió", "La cuadrilla llegó",
        "Foto agregada: Después", "Trabajo terminado", "Reporte cerrado: Resuelto",
        "Comentario: Gracias por reportar", "Reporte reabierto", "Reporte recibido"]
    assert [u["service_request_id"] for u in updates] == [folio] * 8 + [other]
    assert [u["status"] for u in updates] == ["open"] * 5 + ["closed"] * 2 + ["open"] * 2
    moments = [u["updated_datetime"] for u in updates]
    assert moments == sorted(moments) and moments[0] > since
    assert updates[3]["media_url"] == f"https://fotos.example/{folio}.jpg"
    assert [u["media_url"] for u in updates].count(None) == 8
    ids = [u["update_id"] for u in updates]
    assert len(set(ids)) == len(ids) and ids[0] == f"{folio}-3"  # its stream version
    assert projector.open311_updates(since) == updates  # stable ids, stable order

    assert projector.open311_updates(moments[-2]) == updates[-1:]
    assert projector.open311_updates(since, limit=2) == updates[:2]
    assert projector.open311_updates(since, service_codes=["luminaria"]) == updates[-1:]
    assert projector.open311_updates(since, service_codes=[]) == []
    assert projector.open311_updates(moments[-1]) == []


def test_a_capped_page_of_updates_is_the_oldest_across_many_reports(app, projector,
                                                                    monkeypatch):
    monkeypatch.setattr(projections, "UPDATES_CHUNK", 2)  # several reads, the stop rule used
    folios = [open_report(app, "bache" if n % 2 else "fuga") for n in range(5)]
    for round_ in range(2):
        for folio in reversed(folios):
            app.add_comment(folio, SUPERVISOR, text=f"Aviso {round_}")
    projector.catch_up()

    everything = projector.open311_updates(datetime(2000, 1, 1, tzinfo=UTC), limit=1000)
    assert len(everything) == 15
    for limit in (1, 3, 6, 11, 15):
        assert projector.open311_updates(datetime(2000, 1, 1, tzinfo=UTC),
                                         limit=limit) == everything[:limit]
    middle = everything[7]["updated_datetime"]
    assert projector.open311_updates(middle, limit=4) == everything[8:12]
