"""A crew moves its report from the street through crews' field API, against the real tracking:
each step in order with the device's key and time, a repeat recorded once, out of order a 409
with the reason, another crew's job a 403, a phone's offline queue applied in the order things
happened (also when sent twice), a supervisor's override recorded as such, and the citizen's
timeline showing every step."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from shared.chassis.auth import mint_token

pytestmark = pytest.mark.e2e

CITY = ZoneInfo("America/Mexico_City")
POTHOLE = {"service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
           "description": "Bache frente al mercado", "location": {"lat": 20.59, "long": -100.39},
           "channel": "phone_070"}


def auth(role: str, **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'e2e-{role}', (role,), **claims)}"}


CREW = auth("crew", crew_id="C-01")


@pytest.fixture(scope="module")
def crew_c01(stack):
    admin = auth("admin")
    answer = requests.post(f"{stack.crews.url}/crews", headers=admin, timeout=10, json={
        "code": "C-01", "name": "Bacheo Centro", "department": "obras_publicas"})
    assert answer.status_code == 201, answer.text
    asphalt = requests.post(f"{stack.crews.url}/materials", headers=admin, timeout=10, json={
        "code": "MEZ-ASF", "description": "Mezcla asfáltica en frío", "unit": "m3",
        "unit_cost": "1850.00", "effective_at": "2026-01-01T00:00:00-06:00"})
    tomorrow = (datetime.now(CITY) + timedelta(days=1)).isoformat()
    dearer = requests.post(f"{stack.crews.url}/materials/MEZ-ASF/prices", headers=admin,
                           timeout=10, json={"unit_cost": "1990.50", "effective_at": tomorrow})
    assert asphalt.status_code == 201 and dearer.status_code == 200, (asphalt.text, dearer.text)
    return "C-01"


def assigned(stack, crew: str = "C-01") -> str:
    opened = requests.post(f"{stack.tracking.url}/reports", json=POTHOLE, timeout=10,
                           headers=auth("operator"))
    folio = opened.json()["folio"]
    OPENED[0] = datetime.now(CITY)
    assign = requests.post(f"{stack.tracking.url}/reports/{folio}/assign", timeout=10,
                           json={"crew_id": crew}, headers=auth("supervisor"))
    assert assign.status_code == 200, assign.text
    return folio


OPENED = [datetime.now(CITY)]  # when the last report of a test opened


def at(seconds: float) -> str:
    """A moment by the phone's clock: `seconds` after the report opened (a step may not come
    before it, and may be up to a few minutes ahead of our clock)."""
    return (OPENED[0] + timedelta(seconds=seconds)).isoformat()


def step(stack, folio: str, name: str, headers=CREW, **more) -> requests.Response:
    body = {"step": name, "step_id": more.pop("step_id", str(uuid.uuid4())),
            "occurred_at": more.pop("occurred_at", at(60)), **more}
    return requests.post(f"{stack.crews.url}/field/reports/{folio}/steps", json=body,
                         headers=headers, timeout=20)


def timeline(stack, folio: str) -> list[dict]:
    return requests.get(f"{stack.tracking.url}/reports/{folio}", timeout=10).json()["timeline"]


def test_a_crew_walks_its_report_from_the_street_and_the_citizen_sees_each_step(stack, crew_c01):
    folio = assigned(stack)
    dispatched = step(stack, folio, "dispatched", step_id="paso-0001", occurred_at=at(5))
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["step"] == "dispatched" and dispatched.json()["origin"] == "field"
    again = step(stack, folio, "dispatched", step_id="paso-0001", occurred_at=at(5))
    assert again.json()["version"] == dispatched.json()["version"]  # recorded once
    early = step(stack, folio, "work_completed", notes="Listo")
    assert early.status_code == 409 and early.json()["error"]["code"] == "invalid_transition"
    en_route = step(stack, folio, "en_route", occurred_at=at(10),
                    position={"lat": 20.6, "long": -100.4})
    assert en_route.status_code == 200, en_route.text
    crew = requests.get(f"{stack.crews.url}/crews/C-01", headers=CREW, timeout=10).json()
    assert crew["position"]["lat"] == 20.6  # the crew is where its phone said
    assert step(stack, folio, "arrived", occurred_at=at(20)).status_code == 200
    unknown = step(stack, folio, "materials", occurred_at=at(24),
                   items=[{"code": "NADA", "quantity": "1"}])
    assert unknown.status_code == 400 and "NADA" in str(unknown.json()["errors"]["items"])
    used = step(stack, folio, "materials", occurred_at=at(25),
                items=[{"code": "MEZ-ASF", "quantity": "0.5"}])
    assert used.status_code == 200, used.text
    done = step(stack, folio, "work_completed", notes="Bache rellenado", occurred_at=at(30))
    assert done.status_code == 200 and done.json()["step"] == "work_completed"
    entries = timeline(stack, folio)
    assert [e["type"] for e in entries][-5:] == [
        "crew_dispatched", "crew_en_route", "crew_arrived", "materials_logged", "work_completed"]
    staff = requests.get(f"{stack.tracking.url}/reports/{folio}", headers=auth("supervisor"),
                         timeout=10).json()
    # priced at the moment it was logged: tomorrow's price is not today's
    [used] = staff["materials"]
    assert {k: used[k] for k in ("code", "quantity", "unit", "unit_cost", "cost")} == {
        "code": "MEZ-ASF", "quantity": 0.5, "unit": "m3", "unit_cost": "1850.00", "cost": "925.00"}
    page = requests.get(f"{stack.tracking.url}/seguimiento/{folio}", timeout=10)
    assert "La cuadrilla llegó" in page.text and "Trabajo terminado" in page.text


def test_who_may_record_a_field_step(stack, crew_c01):
    folio = assigned(stack)
    assert step(stack, folio, "dispatched", headers={}).status_code == 401
    assert step(stack, folio, "dispatched", headers=auth("operator")).status_code == 403
    other = step(stack, folio, "dispatched", headers=auth("crew", crew_id="C-02"))
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_assigned_crew"
    other_department = step(stack, folio, "dispatched",
                            headers=auth("supervisor", department="servicios_publicos"))
    assert other_department.status_code == 403
    assert len(timeline(stack, folio)) == 2  # opened, assigned: the refusals wrote nothing
    override = step(stack, folio, "dispatched",
                    headers=auth("supervisor", department="obras_publicas"))
    assert override.status_code == 200 and override.json()["origin"] == "supervisor"
    staff = requests.get(f"{stack.tracking.url}/reports/{folio}", headers=auth("supervisor"),
                         timeout=10).json()
    assert staff["timeline"][-1]["actor"]["role"] == "supervisor"


def test_a_phones_offline_queue_lands_in_the_order_things_happened_once(stack, crew_c01):
    folio = assigned(stack)
    queue = [  # as the phone sends them: not in the order they happened
        {"folio": folio, "step": "work_completed", "step_id": "cola-0003",
         "occurred_at": at(40), "notes": "Listo"},
        {"folio": folio, "step": "arrived", "step_id": "cola-0002", "occurred_at": at(20),
         "position": {"lat": 20.61, "long": -100.41}},
        {"folio": folio, "step": "dispatched", "step_id": "cola-0001", "occurred_at": at(5)},
        {"folio": "QRO-2026-999999", "step": "dispatched", "step_id": "cola-0004",
         "occurred_at": at(50)},
    ]
    synced = requests.post(f"{stack.crews.url}/field/sync", json={"updates": queue},
                           headers=CREW, timeout=30)
    assert synced.status_code == 200, synced.text
    results = synced.json()["results"]
    assert [r["step_id"] for r in results] == ["cola-0001", "cola-0002", "cola-0003", "cola-0004"]
    assert [r["status"] for r in results] == [200, 200, 200, 404]
    assert results[2]["report"]["step"] == "work_completed"
    version = results[2]["report"]["version"]
    again = requests.post(f"{stack.crews.url}/field/sync", json={"updates": queue},
                          headers=CREW, timeout=30).json()["results"]
    assert [r["status"] for r in again] == [200, 200, 200, 404]
    assert again[2]["report"]["version"] == version  # each update recorded once
    occurred = [e["at"] for e in timeline(stack, folio)[-3:]]
    assert occurred == sorted(occurred)


NOW = datetime.now(CITY).replace(microsecond=0)
NAIVE = NOW.replace(tzinfo=None).isoformat()
LONG_AGO = (NOW - timedelta(days=400)).isoformat()


@pytest.mark.parametrize("body", [
    {"step": "teleported", "step_id": "x-00000001", "occurred_at": NOW.isoformat()},
    {"step": "arrived", "step_id": "short", "occurred_at": NOW.isoformat()},
    {"step": "arrived", "step_id": "x-00000001", "occurred_at": NAIVE},
    {"step": "arrived", "step_id": "x-00000001", "occurred_at": LONG_AGO},
    {"step": "arrived", "step_id": "x-0000\x00001", "occurred_at": NOW.isoformat()},
    {"step": "arrived", "step_id": "x-00000001"},
    {"step": "materials", "step_id": "x-00000001", "occurred_at": NOW.isoformat()},
    {"step": "arrived", "step_id": "x-00000001", "occurred_at": NOW.isoformat(),
     "items": [{"code": "MEZ-ASF", "quantity": "1"}]},
    {"step": "materials", "step_id": "x-00000001", "occurred_at": NOW.isoformat(),
     "items": [{"code": "MEZ-ASF", "quantity": 0.5}]},
    {"step": "materials", "step_id": "x-00000001", "occurred_at": NOW.isoformat(),
     "items": [{"code": "MEZ-ASF", "quantity": "-1"}]},
])
def test_bad_input_from_a_phone_is_a_400_and_writes_nothing(stack, crew_c01, body):
    folio = assigned(stack)
    answer = requests.post(f"{stack.crews.url}/field/reports/{folio}/steps", json=body,
                           headers=CREW, timeout=10)
    assert answer.status_code == 400, answer.text
    assert len(timeline(stack, folio)) == 2
    batch = requests.post(f"{stack.crews.url}/field/sync", headers=CREW, timeout=10,
                          json={"updates": [{**body, "folio": folio}]})
    assert batch.status_code == 400 and len(timeline(stack, folio)) == 2
