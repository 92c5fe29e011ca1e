"""Crews' real entrypoints without a broker: the crews and materials doors on a worker with the
service's own runtime (a SQLite event store, the views' follower) and the caller's token,
answering as the wire would. Told as the municipality works: an admin forms a crew, its
supervisor adds members, the crew starts its shift from the street; an admin prices asphalt."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.crews.dependencies import CrewsRuntime
from services.crews.service import CrewsService
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.contracts.errors import WireError
from tests.support import ROOT
from tests.workers import Host, http_answer, rpc_reply

CITY = ZoneInfo("America/Mexico_City")


@pytest.fixture
def host(tmp_path):
    config = load_config(ROOT / "services/crews/config.yaml",
                         SQLITE_DBNAME=str(tmp_path / "crews.sqlite"), PROJECTION_COALESCE=0,
                         LEADERSHIP_POLL_INTERVAL=0.1)
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), auth=Auth()).start()
    yield host
    host.stop()


def token(host, role: str, **claims: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config, **claims)


def formed(host, code="C-07", department="obras_publicas") -> dict:
    admin = token(host, "admin")
    answer = http_answer(host, "POST", "/crews", token=admin,
                         json={"code": code, "name": "Bacheo Centro", "department": department})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    answer = http_answer(host, "POST", f"/crews/{code}/members", token=admin,
                         json={"member_id": "pedro", "name": "Pedro Ramírez"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


STEPS_DOOR = "/field/reports/QRO-2026-000123/steps"
EN_ROUTE = {"step": "en_route", "step_id": "x-00000001",
            "occurred_at": datetime.now(CITY).isoformat(),
            "eta": (datetime.now(CITY) + timedelta(minutes=20)).isoformat()}
# Bodies every door must refuse with a 400 (also run on PostgreSQL: tests/integration/
# test_crews_bad_input.py).
HOSTILE = [
    ("/crews", {"code": "c-07", "name": "x", "department": "obras"}),
    ("/crews", {"code": "C-07", "name": "x\x00", "department": "obras"}),
    ("/crews", {"code": "C-07", "name": "x", "department": "obras", "extra": 1}),
    ("/crews", {"code": "C-07", "name": "   ", "department": "obras"}),
    ("/crews/C-07/position", {"lat": 91, "long": 0}),
    ("/crews/C-07/position", {"lat": "NaN", "long": 0}),
    ("/crews/C-07/position", {"lat": 20, "long": -100, "at": "2026-12-05T08:00:00"}),
    ("/crews/C-07/position", {"lat": 20, "long": -100, "at": "1990-01-01T08:00:00+00:00"}),
    ("/crews/C-07/shift", {"action": "nap"}),
    ("/crews/C-07/availability", {"availability": "off_shift"}),
    ("/crews/C-07/members", {"member_id": "ana\ud800", "name": "Ana"}),
    ("/materials", {"code": "MEZ", "description": "x", "unit": "m3", "unit_cost": 12.5}),
    ("/materials", {"code": "MEZ", "description": "x", "unit": "m3", "unit_cost": "1e9"}),
    ("/materials", {"code": "MEZ", "description": "x", "unit": "cubeta", "unit_cost": "1.00"}),
    # A crew's expected arrival goes with the en_route step only, as an aware time (tracking
    # judges the rest: after occurred_at, within a day); refused here, tracking never hears.
    (STEPS_DOOR, {**EN_ROUTE, "step": "arrived"}),
    (STEPS_DOOR, {**EN_ROUTE, "eta": "2026-12-05T10:42:00"}),
    (STEPS_DOOR, {**EN_ROUTE, "eta": "en 20 minutos"}),
    (STEPS_DOOR, {**EN_ROUTE, "eta": "9999-12-31T23:59:59+14:00"}),
    (STEPS_DOOR, {**EN_ROUTE, "eta": "\x00"}),
    ("/field/sync", {"updates": [{**EN_ROUTE, "folio": "QRO-2026-000123", "step": "dispatched"}]}),
]


def test_a_crew_forms_and_starts_its_shift_from_the_street(host):
    crew = formed(host)
    assert crew["members"] == [{"member_id": "pedro", "name": "Pedro Ramírez"}]
    assert (crew["availability"], crew["on_shift"]) == ("off_shift", False)
    pedro = token(host, "crew", crew_id="C-07")
    started = http_answer(host, "POST", "/crews/C-07/shift", token=pedro, json={"action": "start"})
    assert started.status_code == 200 and started.get_json()["availability"] == "available"
    at = (datetime.now(CITY) - timedelta(minutes=2)).isoformat()
    moved = http_answer(host, "POST", "/crews/C-07/position", token=pedro,
                        json={"lat": 20.5931, "long": -100.392, "at": at})
    assert moved.get_json()["position"] == {"lat": 20.5931, "long": -100.392, "at": at}
    busy = http_answer(host, "POST", "/crews/C-07/availability", token=pedro,
                       json={"availability": "busy"})
    assert busy.get_json()["availability"] == "busy"
    listed = http_answer(host, "GET", "/crews", token=token(host, "supervisor"))
    assert [c["availability"] for c in listed.get_json()["crews"]] == ["busy"]


def test_a_department_supervisor_manages_only_that_departments_crews(host):
    formed(host, "C-07", "obras_publicas")
    formed(host, "C-08", "servicios_publicos")
    obras = token(host, "supervisor", department="obras_publicas")
    listed = http_answer(host, "GET", "/crews?department=servicios_publicos", token=obras)
    assert [c["code"] for c in listed.get_json()["crews"]] == ["C-07"]
    refused = http_answer(host, "POST", "/crews/C-08/members", token=obras,
                          json={"member_id": "rosa", "name": "Rosa"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    other = http_answer(host, "POST", "/crews", token=obras, json={
        "code": "C-09", "name": "Otra", "department": "servicios_publicos"})
    assert other.status_code == 403
    assert http_answer(host, "GET", "/crews/C-09", token=token(host, "admin")).status_code == 404


def test_a_crew_member_moves_only_their_own_crew(host):
    formed(host, "C-07")
    formed(host, "C-08")
    rosa = token(host, "crew", crew_id="C-08")
    refused = http_answer(host, "POST", "/crews/C-07/shift", token=rosa, json={"action": "start"})
    assert refused.status_code == 403
    assert http_answer(host, "GET", "/crews/C-07", token=rosa).status_code == 403
    mine = http_answer(host, "GET", "/crews", token=rosa).get_json()["crews"]
    assert [c["code"] for c in mine] == ["C-08"]
    added = http_answer(host, "POST", "/crews/C-08/members", token=rosa,
                        json={"member_id": "x", "name": "X"})
    assert added.status_code == 403  # members are the supervisor's to change


def test_the_rules_answer_409_with_the_reason_and_change_nothing(host):
    formed(host)
    pedro = token(host, "crew", crew_id="C-07")
    ended = http_answer(host, "POST", "/crews/C-07/shift", token=pedro, json={"action": "end"})
    assert ended.status_code == 409 and "not on shift" in ended.get_json()["error"]["message"]
    again = http_answer(host, "POST", "/crews", token=token(host, "admin"), json={
        "code": "C-07", "name": "Otra", "department": "obras_publicas"})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_exists"
    crew = http_answer(host, "GET", "/crews/C-07", token=token(host, "admin")).get_json()
    assert (crew["name"], crew["version"]) == ("Bacheo Centro", 2)


@pytest.mark.parametrize(("path", "body"), HOSTILE)
def test_bad_input_is_a_400_that_says_why_and_writes_nothing(host, path, body):
    formed(host)
    stored = host.providers["crews"].app.recorder.max_notification_id()
    answer = http_answer(host, "POST", path, token=token(host, "admin"), json=body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]
    assert host.providers["crews"].app.recorder.max_notification_id() == stored


def test_a_price_applies_from_its_moment_and_the_cost_rounds_to_the_centavo(host):
    admin = token(host, "admin")
    added = http_answer(host, "POST", "/materials", token=admin, json={
        "code": "MEZ-ASF", "description": "Mezcla asfáltica en frío", "unit": "m3",
        "unit_cost": "1850.00", "effective_at": "2026-01-01T00:00:00-06:00"})
    assert added.status_code == 201, added.get_data(as_text=True)
    changed = http_answer(host, "POST", "/materials/MEZ-ASF/prices", token=admin, json={
        "unit_cost": "1990.50", "effective_at": "2027-01-01T00:00:00-06:00"})
    assert [p["unit_cost"] for p in changed.get_json()["prices"]] == ["1850.00", "1990.50"]
    crew = token(host, "crew", crew_id="C-07")
    for at, cost in (("2026-12-31T23:59:59-06:00", "925.00"),
                     ("2027-01-01T00:00:00-06:00", "995.25")):
        answer = http_answer(host, "GET", "/materials/MEZ-ASF/cost", token=crew,
                             query_string={"quantity": "0.5", "at": at})
        assert answer.get_json()["cost"] == cost
    assert rpc_reply(host, "material_cost", "MEZ-ASF", "0.5", "2027-01-02T00:00:00-06:00",
                     token=token(host, "system"))["unit_cost"] == "1990.50"
    listed = http_answer(host, "GET", "/materials", token=crew).get_json()["materials"]
    assert [m["code"] for m in listed] == ["MEZ-ASF"]


def test_only_admins_change_the_catalog_and_only_staff_read_it(host):
    body = {"code": "MEZ-ASF", "description": "Mezcla", "unit": "m3", "unit_cost": "1.00"}
    assert http_answer(host, "POST", "/materials", token=token(host, "supervisor"),
                       json=body).status_code == 403
    assert http_answer(host, "GET", "/materials").status_code == 401
    with pytest.raises(WireError) as refused:
        rpc_reply(host, "material_cost", "NADA", "1", token=token(host, "system"))
    assert refused.value.code == "not_found"


def test_probes_answer(host):
    assert http_answer(host, "GET", "/healthz").get_json() == {"status": "ok"}
    ready = http_answer(host, "GET", "/readyz")
    assert ready.status_code == 200 and ready.get_json()["ready"] is True
