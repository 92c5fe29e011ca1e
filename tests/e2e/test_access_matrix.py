"""Every door of tracking and intake, knocked on by every principal of docs/access.md, against
running services: what a cell allows answers 2xx and shows the view it names; what it refuses
answers 401/403 and writes nothing (the report's version, tracking's events and intake's rows
stay as they were). The cases are the page's own tables (tests/accessdoc.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import accessdoc
from tests.e2e import access_intake  # noqa: F401  (registers intake's doors)
from tests.e2e.access_world import (
    ABOUT_A_REPORT,
    DOORS,
    OURS,
    PRINCIPALS,
    THEIRS,
    Door,
    Expect,
    Target,
    Who,
    World,
    door,
    http,
    page,
    rpc,
    shows,
)
from tests.stack import Stack

pytestmark = pytest.mark.e2e

LIMITS = {"UPLOAD_TICKETS_PER_HOUR": "1000", "PHOTO_UPLOADS_PER_HOUR": "1000",
          "PHOTO_STAFF_UPLOADS_PER_HOUR": "1000"}
WRONG_TOKEN = "no-es-el-token-del-reporte"


# ---- tracking: staff commands ------------------------------------------------------------------

COMMAND_CASES: dict[str, tuple[str, Callable[[World, Target], dict[str, Any]]]] = {
    "triage": ("opened", lambda w, t: {"department": t.department, "priority": "high",
                                       "service_code": t.service_code}),
    "assign": ("opened", lambda w, t: {"crew_id": t.crew_id}),
    "dispatch_crew": ("assigned", lambda w, t: {}),
    "set_en_route": ("dispatched", lambda w, t: {}),
    "arrive": ("dispatched", lambda w, t: {}),
    "add_photo": ("assigned", lambda w, t: {"url": w.url("intake", "/media/matriz.jpg")}),
    "log_materials": ("on_site", lambda w, t: {"items": [{"code": "MEZ-ASF", "quantity": 1}]}),
    "complete_work": ("on_site", lambda w, t: {"notes": "Listo"}),
    "close_report": ("assigned", lambda w, t: {"resolution": "fixed"}),
    "reopen": ("closed", lambda w, t: {"reason": "Sigue igual"}),
    "mark_duplicate": ("assigned", lambda w, t: {"duplicate_of": w.base[OURS].folio}),
    "add_comment": ("assigned", lambda w, t: {"text": "Vamos mañana", "visibility": "public"}),
}


def staff_command(name: str, internal: bool, via: str) -> Door:
    def run(world: World, who: Who, target: Target, expect: Expect) -> None:
        state, payload = COMMAND_CASES[name]
        report = world.report(target, state)
        body = {**payload(world, target), **({"visibility": "internal"} if internal else {})}
        if via == "http":
            status, state_now = http(world, "POST", "tracking", f"/reports/{report.folio}/{name}",
                                     who, expect, json=body)
        else:
            status, state_now = rpc(world, who, expect, "run_command", name, report.folio, body)
        if expect.allowed:
            assert state_now["version"] == report.version + 1
        assert world.version(report.folio) == report.version + (1 if expect.allowed else 0)
    return run


# ---- tracking: everything else -----------------------------------------------------------------

@door("tracking", "POST /reports", "open_report", report=True)
def open_report(world, who, target, expect, name):
    payload = world.opening(target)
    if name == "open_report":
        status, body = rpc(world, who, expect, "open_report", payload)
    else:
        status, body = http(world, "POST", "tracking", "/reports", who, expect, json=payload)
    assert not expect.allowed or body["folio"]


@door("tracking", "POST /reports/{folio}/confirm", "POST /reports/{folio}/dispute",
      "citizen_feedback")
def citizen_feedback(world, who, target, expect, name):
    report = world.report(target, "closed")
    token = report.access_token if who.column == "citizen" else WRONG_TOKEN
    payload = {"access_token": token, "comment": "Sigue igual"}
    if name == "citizen_feedback":
        rpc(world, who, expect, "citizen_feedback", report.folio, "confirm", payload)
    else:
        http(world, "POST", "tracking", f"/reports/{report.folio}/{name.rsplit('/', 1)[1]}", who,
             expect, json=payload)
    assert world.version(report.folio) == report.version + (1 if expect.allowed else 0)


@door("tracking", "GET /reports/{folio}", "get_report", "get_report_staff", report=True)
def read_report(world, who, target, expect, name):
    report = world.base[target]
    citizen = who.column == "citizen"
    if name == "GET /reports/{folio}":
        headers = {"X-Access-Token": report.access_token} if citizen else {}
        status, body = http(world, "GET", "tracking", f"/reports/{report.folio}", who, expect,
                            headers=headers)
    elif name == "get_report":
        token = report.access_token if citizen else None
        status, body = rpc(world, who, expect, "get_report", report.folio, token)
    else:
        status, body = rpc(world, who, expect, "get_report_staff", report.folio)
    if expect.allowed:
        shows(body, expect.view)


@door("tracking", "GET /reports", "search_reports", report=True)
def search(world, who, target, expect, name):
    folio = world.base[target].folio
    filters = {"department": target.department, "crew_id": target.crew_id, "folio": folio}
    if name == "search_reports":
        status, found = rpc(world, who, expect, "search_reports", filters)
    else:
        status, found = http(world, "GET", "tracking", "/reports", who, expect, params=filters)
        found = found["reports"] if expect.allowed else found
    if not expect.allowed:
        return
    assert [row["folio"] for row in found] == [folio]
    if expect.scope:  # and with no filter, only what the scope reaches
        key, value = {"dept": ("department", who.department),
                      "own": ("crew_id", who.crew_id)}[expect.scope]
        everything = world.rpc(who, "search_reports", {"limit": 1000})[1]
        assert everything and {row[key] for row in everything} == {value}


@door("tracking", "GET /reports/{folio}/events", "report_events", report=True)
def events(world, who, target, expect, name):
    folio = world.base[target].folio
    if name == "report_events":
        status, found = rpc(world, who, expect, "report_events", folio, 0)
    else:
        status, found = http(world, "GET", "tracking", f"/reports/{folio}/events", who, expect)
        found = found["events"] if expect.allowed else found
    assert not expect.allowed or {event["subject"] for event in found} == {folio}


@door("tracking", "open311_requests", "open311_updates")
def open311_rpc(world, who, target, expect, name):
    filters = ({"folio": world.base[OURS].folio} if name == "open311_requests"
               else {"since": "2020-01-01T00:00:00Z", "limit": 5})
    status, found = rpc(world, who, expect, name, filters)
    assert isinstance(found, list) and found


for service in ("tracking", "intake"):
    for probe in ("healthz", "readyz", "metrics", "openapi.json"):
        DOORS[service, f"GET /{probe}"] = page(service, lambda w, p=probe: f"/{p}")


@door("tracking", "GET /seguimiento/{folio}")
def status_page(world, who, target, expect, name):
    report = world.base[OURS]
    token = report.access_token if who.column == "citizen" else None
    status, body = http(world, "GET", "tracking", f"/seguimiento/{report.folio}", who, expect,
                        params={"token": token} if token else {})
    shows(body, expect.view)


DOORS["tracking", "GET /"] = page("tracking", lambda w: "/")
DOORS["tracking", "GET /static/{name}"] = page("tracking", lambda w: "/static/status.css")
DOORS["tracking", "GET /sw.js"] = page("tracking", lambda w: "/sw.js")


# ---- the cases: every cell of the page, on our report and (for a scope) on theirs ---------------

SERVICE_OF = {"Tracking: staff commands": "tracking", "Tracking: everything else": "tracking",
              "Intake": "intake"}


def cases() -> list[Any]:
    found = []
    for row in accessdoc.rows():
        if row.section.startswith("Crews"):
            continue  # tests/unit/test_crews_access.py and tests/e2e/test_field_steps.py
        if row.section.startswith("Notifications"):
            continue  # tests/unit/test_notifications_access.py
        if row.section.startswith("Billing"):
            continue  # not in this world; refusals: tests/integration/test_billing_bad_input.py
        service = SERVICE_OF[row.section]
        if row.section == "Tracking: staff commands":
            command, internal = row.doors[0], "internal" in row.label
            callers = [(f"{row.label} via {via}", staff_command(command, internal, via), True)
                       for via in ("rpc", "http")]
        else:
            callers = [(name, DOORS.get((service, name)), (service, name) in ABOUT_A_REPORT)
                       for name in row.doors]
        for label, caller, about_a_report in callers:
            for column, cell in row.cells.items():
                found.append(pytest.param(caller, label, PRINCIPALS[column], cell,
                                          about_a_report, id=f"{service} {label} [{column}]"))
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("access"), LIMITS).start()
    try:
        built = World(stack)
        yield built
        built.close()
    finally:
        stack.stop()


@pytest.mark.parametrize(("caller", "label", "who", "cell", "about_a_report"), cases())
def test_who_may_use_each_door(world, caller, label, who, cell, about_a_report):
    assert caller is not None, f"no test knocks on {label}: add it to DOORS"
    if not cell.allowed:
        caller(world, who, OURS, Expect(False, int(cell.access)))
        return
    scope = cell.access if cell.access != "✓" else None
    caller(world, who, OURS, Expect(True, view=cell.view, scope=scope))
    if about_a_report:  # the other department's report, assigned to the other crew
        refused = Expect(False, 403) if scope else Expect(True, view=cell.view)
        caller(world, who, THEIRS, refused)
