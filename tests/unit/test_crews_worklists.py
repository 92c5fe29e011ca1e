"""Crews' work lists: the fold of a report's events (as tracking publishes them) into a job, the
consumer applying a shuffled, repeated delivery exactly as a rebuild would, and the doors that
read them (a crew's jobs, a department's board, the crews to suggest), on crews' real entrypoints.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.crews import worklists
from services.crews.dependencies import CrewsRuntime
from services.crews.jobs import distance_km
from services.crews.service import CrewsService
from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.chassis.runtime import RuntimeStore
from shared.chassis.sqlstore import SqliteStore
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.errors import WireError
from tests.support import ROOT, deliver_in_batches
from tests.workers import Host, http_answer, rpc_reply

SUPERVISOR = Actor("lucia", "supervisor", "staff")
OPERATOR = Actor("ana", "operator", "phone_070")


def crew(code: str) -> Actor:
    return Actor(f"{code.lower()}-pedro", "crew", "field", crew_id=code)


@pytest.fixture(scope="module")
def history() -> list[CloudEvent]:
    """Two reports as tracking records and publishes them: a pothole walked by C-01, reassigned
    before it set out, with photos, closed, reopened; a street light only opened."""
    app = TrackingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    pothole = app.open_report(
        service_code="bache", service_name="Bache", department="obras_publicas",
        description="Bache frente a la escuela", location={"lat": 20.59, "long": -100.39},
        media_urls=["https://fotos.example/antes.jpg"], actor=OPERATOR).folio
    lamp = app.open_report(
        service_code="alumbrado_publico", service_name="Alumbrado público",
        department="servicios_publicos", description="Luminaria apagada",
        location={"address": "Av. Juárez 10"}, actor=OPERATOR).folio
    start = datetime.now(UTC)
    app.assign(pothole, SUPERVISOR, crew_id="C-02")
    app.assign(pothole, SUPERVISOR, crew_id="C-01")
    app.dispatch_crew(pothole, crew("C-01"), occurred_at=start + timedelta(minutes=1))
    app.set_en_route(pothole, crew("C-01"), occurred_at=start + timedelta(minutes=2))
    app.arrive(pothole, crew("C-01"), occurred_at=start + timedelta(minutes=20))
    app.add_photo(pothole, crew("C-01"), url="https://fotos.example/despues.jpg",
                  caption="Bache tapado", stage="after", occurred_at=start + timedelta(minutes=50))
    app.complete_work(pothole, crew("C-01"), notes="Tapado con mezcla en frío",
                      occurred_at=start + timedelta(minutes=55))
    app.close_report(pothole, SUPERVISOR, resolution="fixed", notes="Listo")
    app.reopen(pothole, SUPERVISOR, reason="El bache volvió")
    converter = CloudEventConverter(app)
    events = [converter.convert(event) for folio in (pothole, lamp)
              for event in app.history(folio)]
    app.close()
    return events


def by_folio(events: list[CloudEvent]) -> dict[str, list[CloudEvent]]:
    streams: dict[str, list[CloudEvent]] = {}
    for event in events:
        streams.setdefault(str(event.subject), []).append(event)
    return streams


def test_a_job_follows_its_report_through_the_lifecycle(history):
    pothole, lamp = by_folio(history)
    walked = worklists.rebuild(history)
    job = walked[pothole]
    assert job["step"] == "reopened" and job["status"] == "open"
    assert job["crew_id"] is None  # a reopened report loses its crew
    assert job["photos"] == ["https://fotos.example/antes.jpg", "https://fotos.example/despues.jpg"]
    assert job["version"] == len(by_folio(history)[pothole])
    assert walked[lamp]["step"] == "opened" and walked[lamp]["address"] == "Av. Juárez 10"
    assert walked[lamp]["department"] == "servicios_publicos"

    # Part-way, the job is C-01's (the second assignment wins) and its steps are the device's.
    until_arrival = [e for e in history if e.subject == pothole][:7]
    job = worklists.rebuild(until_arrival)[pothole]
    assert (job["crew_id"], job["step"]) == ("C-01", "on_site")
    assert worklists.next_steps(job["step"]) == ["materials", "work_completed"]
    arrived = datetime.fromisoformat(job["arrived_at"])
    assert arrived - datetime.fromisoformat(job["dispatched_at"]) == timedelta(minutes=19)


def test_the_next_steps_come_from_the_lifecycle_on_the_wire():
    assert worklists.next_steps("assigned") == ["dispatched"]
    assert worklists.next_steps("dispatched") == ["en_route", "arrived"]
    assert worklists.next_steps("work_completed") == ["materials"]
    assert worklists.next_steps("closed") == []
    assert worklists.next_steps("opened") == []


class Consumer:
    """What the consumer's wrapper needs of the service: the store, and tracking's answer for
    a report's events after a version (here: the recorded history)."""

    def __init__(self, store: SqliteStore, events: list[CloudEvent]) -> None:
        self.views = store
        self.streams = by_folio(events)
        self.fetched: list[tuple[str, int]] = []

    def fetch_report_events(self, folio: str, after_version: int) -> list[dict]:
        self.fetched.append((folio, after_version))
        return [e.to_dict() for e in self.streams[folio]
                if e.extensions["streamversion"] > after_version]


def stored(store: SqliteStore) -> dict[str, dict]:
    rows, _ = store.run(f"SELECT {', '.join(worklists.COLUMNS)} FROM work_jobs")
    return {row[0]: worklists.from_row(row) for row in rows}


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_and_repeated_deliveries_equal_a_rebuild(history, tmp_path, seed):
    store = SqliteStore(str(tmp_path / "crews.sqlite"))
    worklists.prepare(store)
    service = Consumer(store, history)
    deliveries = history + random.Random(seed).sample(history, len(history) // 2)
    random.Random(seed + 100).shuffle(deliveries)
    for event in deliveries:
        CrewsService.consume_report_event(service, event, "crews.consume_report_event")
    assert stored(store) == worklists.rebuild(history)
    assert service.fetched  # a later version came first: the gap was filled from tracking
    again = stored(store)
    for event in history:  # every one redelivered once more: old news
        assert CrewsService.consume_report_event(service, event,
                                                 "crews.consume_report_event") is False
    assert stored(store) == again
    store.close()


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_and_repeated_deliveries_in_batches_equal_a_rebuild(history, tmp_path, seed):
    """As the consumer takes them under load: in batches of any size; what a batch leaves (past
    a gap) is then applied alone."""
    store = SqliteStore(str(tmp_path / "crews.sqlite"))
    worklists.prepare(store)
    service = Consumer(store, history)
    deliveries = history + random.Random(seed).sample(history, len(history) // 2)
    random.Random(seed + 100).shuffle(deliveries)
    deliver_in_batches(CrewsService.consume_report_event, service, deliveries,
                       "crews.consume_report_event", seed)
    assert stored(store) == worklists.rebuild(history)
    again = stored(store)
    outcome = CrewsService.consume_report_event(service, history, "crews.consume_report_event",
                                                batch=True)
    assert outcome.applied == () and len(outcome.duplicates) == len(history)  # all old news
    assert stored(store) == again
    store.close()


def steps_counted(step: str, origin: str, department: str = "obras_publicas") -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("expediente_field_steps_total", {
        "step": step, "origin": origin, "department": department}) or 0


def test_each_field_step_is_counted_once_by_who_recorded_it(history, tmp_path):
    """Counted as the consumer applies the event: a redelivery (like a phone's retry of the same
    step_id, which tracking records once) is not counted again."""
    store = SqliteStore(str(tmp_path / "crews.sqlite"))
    worklists.prepare(store)
    service = Consumer(store, history)
    counted = {step: steps_counted(step, "field") for step in ("dispatched", "photo")}
    for event in history + history:
        CrewsService.consume_report_event(service, event, "crews.consume_report_event")
    assert steps_counted("dispatched", "field") == counted["dispatched"] + 1
    assert steps_counted("photo", "field") == counted["photo"] + 1
    store.close()


def test_straight_line_distance():
    centro, arcos = {"lat": 20.5931, "long": -100.3920}, {"lat": 20.5930, "long": -100.3710}
    assert distance_km(centro, arcos) == pytest.approx(2.19, abs=0.02)
    assert distance_km(centro, {"lat": None, "long": None}) is None


# ---- the doors, on crews' real entrypoints -----------------------------------------------------


@pytest.fixture
def host(tmp_path, history):
    config = load_config(ROOT / "services/crews/config.yaml",
                         SQLITE_DBNAME=str(tmp_path / "crews.sqlite"), PROJECTION_COALESCE=0,
                         LEADERSHIP_POLL_INTERVAL=0.1)
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), views=RuntimeStore(),
                                              auth=Auth()).start()
    store = host.providers["crews"].app.sql
    pothole = next(iter(by_folio(history)))
    walked = [e for e in history if e.subject == pothole][:7]  # C-01 on site
    for event in [*walked, *(e for e in history if e.subject != pothole)]:
        CrewsService.consume_report_event(Consumer(store, history), event, "crews.consumer")
    admin = mint_token("root", "admin", config=config)
    for code, lat in (("C-01", 20.60), ("C-02", 20.591)):
        for path, body in (("/crews", {"code": code, "name": f"Bacheo {code}",
                                       "department": "obras_publicas"}),
                           (f"/crews/{code}/members", {"member_id": f"{code}-p", "name": "P"}),
                           (f"/crews/{code}/shift", {"action": "start"}),
                           (f"/crews/{code}/position", {"lat": lat, "long": -100.39})):
            answer = http_answer(host, "POST", path, token=admin, json=body)
            assert answer.status_code in (200, 201), answer.get_data(as_text=True)
    host.providers["crews"].await_projections()  # the crews just made, in their view
    host.folio = pothole
    host.others = [folio for folio in by_folio(history) if folio != pothole]
    yield host
    host.stop()


def token(host, role: str, **claims: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config, **claims)


def test_a_crew_reads_its_own_jobs_and_a_supervisor_their_departments(host):
    mine = http_answer(host, "GET", "/field/jobs", token=token(host, "crew", crew_id="C-01"))
    assert mine.status_code == 200, mine.get_data(as_text=True)
    body = mine.get_json()
    assert body["crew"]["code"] == "C-01"
    assert [(j["folio"], j["step"]) for j in body["jobs"]] == [(host.folio, "on_site")]
    assert body["jobs"][0]["next_steps"] == ["materials", "work_completed"]
    other = http_answer(host, "GET", "/field/jobs", token=token(host, "crew", crew_id="C-02"))
    assert other.get_json()["jobs"] == []

    board = http_answer(host, "GET", "/board",
                        token=token(host, "supervisor", department="obras_publicas")).get_json()
    assert [j["folio"] for j in board["jobs"]] == [host.folio]
    assert {c["code"]: c["open_jobs"] for c in board["crews"]} == {"C-02": 0, "C-01": 1}
    city = http_answer(host, "GET", "/board?department=servicios_publicos",
                       token=token(host, "admin")).get_json()
    assert [j["service_code"] for j in city["jobs"]] == ["alumbrado_publico"]


def test_suggested_crews_are_the_nearest_available_first_with_their_workload(host):
    answer = http_answer(host, "GET", f"/reports/{host.folio}/suggested-crews",
                         token=token(host, "supervisor", department="obras_publicas"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    crews = answer.get_json()["crews"]
    assert [(c["code"], c["open_jobs"]) for c in crews] == [("C-02", 0), ("C-01", 1)]
    assert crews[0]["distance_km"] < crews[1]["distance_km"]


# Reads every door must refuse with a 400 (also run on PostgreSQL: tests/integration/
# test_crews_bad_input.py).
HOSTILE_READS = [
    ("/board?department=%00", "admin"),
    ("/board?department=" + "x" * 65, "admin"),
    ("/reports/QRO%00/suggested-crews", "supervisor"),
    ("/reports/" + "Q" * 40 + "/suggested-crews", "supervisor"),
]


@pytest.mark.parametrize(("path", "role", "claims", "status"), [
    ("/field/jobs", None, {}, 401),
    ("/field/jobs", "operator", {}, 403),
    ("/board", "crew", {"crew_id": "C-01"}, 403),
    ("/board?department=servicios_publicos", "supervisor", {"department": "obras_publicas"}, 403),
    ("/reports/QRO-2026-000001/suggested-crews", "crew", {"crew_id": "C-01"}, 403),
    ("/reports/QRO-2026-999999/suggested-crews", "supervisor", {}, 404),
    *((path, role, {}, 400) for path, role in HOSTILE_READS),
])
def test_bad_or_unauthorised_reads_get_a_clear_answer(host, path, role, claims, status):
    answer = http_answer(host, "GET", path,
                         token=token(host, role, **claims) if role else None)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["message"]


# ---- docs/access.md's "Crews: work lists" table, cell by cell ----------------------------------

COLUMNS = {  # the page's columns: roles and claims (the citizen holds no bearer token)
    "anon": None, "citizen": None, "operator": ("operator", {}),
    "sup:obras": ("supervisor", {"department": "obras_publicas"}), "sup": ("supervisor", {}),
    "crew:C-01": ("crew", {"crew_id": "C-01"}), "billing": ("billing_clerk", {}),
    "auditor": ("auditor", {}), "system": ("system", {}), "admin": ("admin", {}),
    "sup+op:obras": (("supervisor", "operator"), {"department": "obras_publicas"}),
}


def knock(host, column: str, door: str, department: str) -> tuple[int, dict]:
    """The door, asked about `department`'s jobs (ours: public works; theirs: public services)."""
    lamp = host.others[0]
    path = {"catch_up_work_lists": "", "GET /field/jobs": "/field/jobs",
            "GET /board": f"/board?department={department}",
            "GET /reports/{folio}/suggested-crews":
                f"/reports/{host.folio if department == 'obras_publicas' else lamp}"
                "/suggested-crews"}[door]
    who = COLUMNS[column]
    bearer = mint_token(f"matriz-{column}", who[0], config=host.config, **who[1]) if who else None
    if door == "catch_up_work_lists":  # RPC; tracking here answers no reports
        try:
            return 200, rpc_reply(host, door, "open", token=bearer)
        except WireError as refused:
            return refused.status, {}
    answer = http_answer(host, "GET", path, token=bearer)
    return answer.status_code, answer.get_json()


def matrix() -> list:
    from tests import accessdoc
    return [pytest.param(door, column, cell, id=f"{door} [{column}]")
            for row in accessdoc.rows() if row.section == "Crews: work lists"
            for door in row.doors for column, cell in row.cells.items()]


@pytest.mark.parametrize(("door", "column", "cell"), matrix())
def test_who_may_read_the_work_lists(host, door, column, cell):
    status, body = knock(host, column, door, "obras_publicas")
    if not cell.allowed:
        assert status == int(cell.access)
        return
    assert status == 200, body
    if door == "GET /field/jobs":
        departments = {job["department"] for job in body["jobs"]}
        crews = {job["crew_id"] for job in body["jobs"]}
        expected = {"own": crews == {"C-01"}, "dept": departments == {"obras_publicas"}}
        assert expected.get(cell.access, departments == {"obras_publicas",
                                                         "servicios_publicos"})
    elif door == "catch_up_work_lists":
        assert body == {"reports": 0, "events_applied": 0}
    elif cell.access == "dept":
        assert knock(host, column, door, "servicios_publicos")[0] == 403
    else:
        assert knock(host, column, door, "servicios_publicos")[0] == 200
