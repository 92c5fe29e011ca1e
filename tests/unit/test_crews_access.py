"""Every cell of docs/access.md's Crews table, run on crews' real entrypoints without a broker:
what a cell allows answers 2xx (and, for `dept` or `own`, a refusal on the other department's
crew, or a list holding only its own); what it refuses answers 401/403 and writes nothing.
Ours is crew C-01 of public works; theirs C-02 of public services."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.crews.dependencies import CrewsRuntime
from services.crews.service import CrewsService
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.contracts.errors import WireError
from tests import accessdoc
from tests.support import ROOT
from tests.workers import Host, http_answer, rpc_reply

OBRAS, SERVICIOS = "obras_publicas", "servicios_publicos"
OURS, THEIRS = "C-01", "C-02"
CITY = ZoneInfo("America/Mexico_City")
# The page's columns (its "Who knocks"): roles and claims; the citizen holds no bearer token.
PRINCIPALS: dict[str, dict[str, Any]] = {
    "anon": {}, "citizen": {}, "operator": {"roles": ("operator",)},
    "sup:obras": {"roles": ("supervisor",), "department": OBRAS},
    "sup": {"roles": ("supervisor",)}, "crew:C-01": {"roles": ("crew",), "crew_id": OURS},
    "billing": {"roles": ("billing_clerk",)}, "auditor": {"roles": ("auditor",)},
    "system": {"roles": ("system",)}, "admin": {"roles": ("admin",)},
    "sup+op:obras": {"roles": ("supervisor", "operator"), "department": OBRAS},
}
SERIAL = itertools.count(10)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    config = load_config(ROOT / "services/crews/config.yaml", PROJECTION_COALESCE=0,
                         SQLITE_DBNAME=str(tmp_path_factory.mktemp("crews") / "crews.sqlite"))
    host = Host(CrewsService, config).provide(crews=CrewsRuntime(), auth=Auth()).start()
    app = host.providers["crews"].app
    for code, department, member in ((OURS, OBRAS, "pedro"), (THEIRS, SERVICIOS, "rosa")):
        app.create_crew(code, f"Cuadrilla {code}", department, by="setup")
        app.join(code, member, member.title(), by="setup")
        app.start_shift(code, datetime.now(CITY), by="setup")
    app.add_material("MEZ-ASF", "Mezcla asfáltica", "m3", "1850.00",
                     datetime(2026, 1, 1, tzinfo=CITY), by="setup")
    yield host
    host.stop()


def token(host: Host, column: str) -> str | None:
    who = PRINCIPALS[column]
    if not who:
        return None
    return mint_token(f"matriz-{column}", who["roles"], config=host.config,
                      department=who.get("department"), crew_id=who.get("crew_id"))


def stored(host: Host) -> int:
    return host.providers["crews"].app.recorder.max_notification_id() or 0


BEFORE = [0]  # what the store held as the knock was sent (after the knock's own setting up)


def answer(host: Host, column: str, method: str, path: str, **request: Any) -> tuple[int, Any]:
    BEFORE[0] = stored(host)
    response = http_answer(host, method, path, token=token(host, column), **request)
    return response.status_code, response.get_json(silent=True)


def now(hours: float = 0) -> str:
    return (datetime.now(CITY) + timedelta(hours=hours)).isoformat()


# ---- a knock per door: (host, column, crew) -> status; the crew is ours or theirs ---------------

def list_crews(host, column, crew):
    status, body = answer(host, column, "GET", "/crews")
    return status, sorted(c["code"] for c in body["crews"]) if status == 200 else None


def create_crew(host, column, crew):
    department = OBRAS if crew == OURS else SERVICIOS
    return answer(host, column, "POST", "/crews", json={
        "code": f"N-{next(SERIAL)}", "name": "Nueva", "department": department})[0], None


def add_member(host, column, crew):
    return answer(host, column, "POST", f"/crews/{crew}/members",
                  json={"member_id": f"m{next(SERIAL)}", "name": "Integrante"})[0], None


def remove_member(host, column, crew):
    member = f"m{next(SERIAL)}"
    host.providers["crews"].app.join(crew, member, "Integrante", by="setup")
    return answer(host, column, "DELETE", f"/crews/{crew}/members/{member}")[0], None


def shift(host, column, crew):
    on_shift = host.providers["crews"].app.crew(crew).on_shift
    return answer(host, column, "POST", f"/crews/{crew}/shift",
                  json={"action": "end" if on_shift else "start"})[0], None


def availability(host, column, crew):
    current = host.providers["crews"].app.crew(crew)
    if not current.on_shift:
        host.providers["crews"].app.start_shift(crew, datetime.now(CITY), by="setup")
    wanted = "busy" if current.availability == "available" else "available"
    return answer(host, column, "POST", f"/crews/{crew}/availability",
                  json={"availability": wanted})[0], None


def position(host, column, crew):
    return answer(host, column, "POST", f"/crews/{crew}/position",
                  json={"lat": 20.59, "long": -100.39, "at": now()})[0], None


def material_cost_rpc(host, column, crew):
    BEFORE[0] = stored(host)
    try:
        rpc_reply(host, "material_cost", "MEZ-ASF", "1", token=token(host, column))
    except WireError as refused:
        return refused.status, None
    return 200, None


def add_material(host, column, crew):
    return answer(host, column, "POST", "/materials", json={
        "code": f"MAT-{next(SERIAL)}", "description": "Material", "unit": "pieza",
        "unit_cost": "10.00"})[0], None


def change_price(host, column, crew):
    return answer(host, column, "POST", "/materials/MEZ-ASF/prices", json={
        "unit_cost": "1900.00", "effective_at": now(24 + next(SERIAL))})[0], None


def get(path: str) -> Callable[..., tuple[int, Any]]:
    return lambda host, column, crew: (answer(host, column, "GET", path.format(crew=crew))[0],
                                       None)


KNOCKS: dict[str, Callable[..., tuple[int, Any]]] = {
    "GET /crews": list_crews, "GET /crews/{code}": get("/crews/{crew}"),
    "POST /crews": create_crew, "POST /crews/{code}/members": add_member,
    "DELETE /crews/{code}/members/{member_id}": remove_member,
    "POST /crews/{code}/shift": shift, "POST /crews/{code}/availability": availability,
    "POST /crews/{code}/position": position, "GET /materials": get("/materials"),
    "GET /materials/{code}/cost": get("/materials/MEZ-ASF/cost?quantity=1"),
    "material_cost": material_cost_rpc, "POST /materials": add_material,
    "POST /materials/{code}/prices": change_price, "GET /healthz": get("/healthz"),
    "GET /readyz": get("/readyz"), "GET /metrics": get("/metrics"),
    "GET /openapi.json": get("/openapi.json"),
}
# A scoped cell's list holds only these crews (ours: C-01, and the crews the knocks created in
# public works); its door about one crew refuses theirs.
SCOPED_LIST = {"dept": lambda codes: THEIRS not in codes and OURS in codes,
               "own": lambda codes: codes == [OURS]}


def cases() -> list[Any]:
    return [pytest.param(door, column, cell, id=f"{door} [{column}]")
            for row in accessdoc.rows() if row.section == "Crews"
            for door in row.doors for column, cell in row.cells.items()]


@pytest.mark.parametrize(("door", "column", "cell"), cases())
def test_who_may_use_each_crews_door(host, door, column, cell):
    knock = KNOCKS[door]
    if not cell.allowed:
        status, _ = knock(host, column, OURS)
        assert status == int(cell.access)
        assert stored(host) == BEFORE[0]  # a refusal writes nothing
        return
    status, listed = knock(host, column, OURS)
    assert 200 <= status < 300, status
    if door == "GET /crews":
        assert (SCOPED_LIST[cell.access](listed) if cell.access in SCOPED_LIST
                else {OURS, THEIRS} <= set(listed))
    elif cell.access in SCOPED_LIST:
        assert knock(host, column, THEIRS)[0] == 403
        assert stored(host) == BEFORE[0]
    elif "{code}" in door and door.startswith(("GET /crews", "POST /crews", "DELETE")):
        assert 200 <= knock(host, column, THEIRS)[0] < 300
