"""The world the access matrix runs in: the principals of docs/access.md as credentials, two
departments' reports to act on, and what counts as written (tests/e2e/test_access_matrix.py)."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from shared.chassis.auth import mint_token
from tests.e2e.test_portal import tiny_png
from tests.support import wait_for

OBRAS, SERVICIOS = "obras_publicas", "servicios_publicos"
PUBLIC, PRIVATE, INTERNAL = ("Comentario público para todos", "Comentario privado para quien "
                             "reportó", "Nota interna del personal")
SHOWN = {"public": {PUBLIC}, "private": {PUBLIC, PRIVATE}, "crew": {PUBLIC, PRIVATE},
         "staff": {PUBLIC, PRIVATE, INTERNAL}}
# What a refusal over nameko's RPC arrives as (ClusterRpcProxy keeps the class name only).
RPC_STATUS = {"Unauthenticated": 401, "Forbidden": 403, "NotAssignedCrew": 403,
              "PermissionError": 403}
POTHOLE = {"service_code": "bache", "description": "Bache de la matriz",
           "location": {"lat": 20.61, "long": -100.41}, "answers": {"tamano": "grande"}}
STEPS = {"opened": (), "assigned": ("assign",), "dispatched": ("assign", "dispatch_crew"),
         "on_site": ("assign", "dispatch_crew", "arrive"), "closed": ("assign", "close_report")}


@dataclass(frozen=True)
class Who:
    """A column of the page: who knocks, and the credential they hold."""

    column: str
    roles: tuple[str, ...] = ()
    department: str | None = None
    crew_id: str | None = None

    def headers(self) -> dict[str, str]:
        if not self.roles:
            return {}
        token = mint_token(f"matriz-{self.column}", self.roles, department=self.department,
                           crew_id=self.crew_id)
        return {"Authorization": f"Bearer {token}"}

    def context(self) -> dict[str, str] | None:
        headers = self.headers()
        return {"authorization": headers["Authorization"]} if headers else None


PRINCIPALS = {who.column: who for who in (
    Who("anon"), Who("citizen"), Who("operator", ("operator",)),
    Who("sup:obras", ("supervisor",), department=OBRAS), Who("sup", ("supervisor",)),
    Who("crew:C-01", ("crew",), crew_id="C-01"), Who("billing", ("billing_clerk",)),
    Who("auditor", ("auditor",)), Who("system", ("system",)), Who("admin", ("admin",)),
    Who("sup+op:obras", ("supervisor", "operator"), department=OBRAS), Who("o311"), Who("bot"))}
ADMIN = PRINCIPALS["admin"]


@dataclass(frozen=True)
class Target:
    """Which reports a case acts on: ours (public works, crew C-01) or theirs (public services,
    crew C-02); a `dept` or `own` cell is allowed on ours and refused on theirs."""

    department: str
    crew_id: str
    service_code: str
    service_name: str
    answers: tuple[tuple[str, str], ...]


OURS = Target(OBRAS, "C-01", "bache", "Bache", (("tamano", "grande"),))
THEIRS = Target(SERVICIOS, "C-02", "alumbrado_publico", "Alumbrado público",
                (("falla", "apagada"),))


@dataclass(frozen=True)
class Report:
    folio: str
    access_token: str
    version: int


class Writes:
    """What a call may write, counted: tracking's stored events, the rows of intake's tables
    (and how far its chatbot conversations went)."""

    INTAKE = ("intake_submissions", "intake_conversations", "intake_photos", "intake_services",
              "intake_upload_tickets")

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.events = min(table for table in stack.tables("tracking")
                          if table.endswith("_events") and table != "processed_events")
        assert set(self.INTAKE) <= stack.tables("intake"), stack.tables("intake")

    def now(self) -> tuple[int, ...]:
        intake = ", ".join([*(f"(SELECT COUNT(*) FROM {table})" for table in self.INTAKE),
                            "(SELECT COALESCE(SUM(version), 0) FROM intake_conversations)"])
        [events] = self.stack.query("tracking", f"SELECT COUNT(*) FROM {self.events}")
        [rows] = self.stack.query("intake", f"SELECT {intake}")
        return tuple(int(count) for count in (*events, *rows))


class World:
    """A running stack, RPC proxies per principal, the two reports every read looks at (each
    with a public, a private and an internal comment), an app's receipt and a stored photo."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.proxies: dict[str, Any] = {}
        self.writes = Writes(stack)
        self.base = {target: self.report(target, "assigned") for target in (OURS, THEIRS)}
        for report in self.base.values():
            for text, visibility in ((PUBLIC, "public"), (PRIVATE, "private"),
                                     (INTERNAL, "internal")):
                self.command(report.folio, "add_comment", {"text": text,
                                                           "visibility": visibility})
        folios = {report.folio for report in self.base.values()}
        wait_for(lambda: folios <= {r["folio"] for r in self.search({"limit": 1000})},
                 message="the two reports in tracking's views")
        self.receipt = self.http.post(self.url("intake", "/api/v1/reports"), json=POTHOLE,
                                      headers={"Idempotency-Key": new_key()}, timeout=30).json()
        uploaded = self.http.post(self.url("intake", "/api/v1/photos"), data=tiny_png(),
                                  headers={**ADMIN.headers(), "Content-Type": "image/png"},
                                  timeout=30)
        self.photo = uploaded.json()["url"].rpartition("/")[2]

    def url(self, service: str, path: str) -> str:
        return f"{getattr(self.stack, service).url}{path}"

    def report(self, target: Target, state: str) -> Report:
        """A new report of the target's department, walked by an admin to `state`."""
        opened = self.http.post(self.url("tracking", "/reports"), headers=ADMIN.headers(),
                                json=self.opening(target), timeout=20)
        assert opened.status_code == 201, opened.text
        folio, version = opened.json()["folio"], 1
        for name in STEPS[state]:
            payload = {"assign": {"crew_id": target.crew_id},
                       "close_report": {"resolution": "fixed"}}.get(name, {})
            version = self.command(folio, name, payload)["version"]
        return Report(folio, opened.json()["access_token"], version)

    def opening(self, target: Target) -> dict[str, Any]:
        return {"service_code": target.service_code, "service_name": target.service_name,
                "department": target.department, "description": "Reporte de la matriz",
                "location": {"lat": 20.5931, "long": -100.392}, "channel": "window"}

    def command(self, folio: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(self.url("tracking", f"/reports/{folio}/{name}"),
                                headers=ADMIN.headers(), json=payload, timeout=20)
        assert answer.status_code == 200, (name, answer.text)
        return answer.json()

    def search(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        found = self.http.get(self.url("tracking", "/reports"), params=filters,
                              headers=ADMIN.headers(), timeout=20)
        assert found.status_code == 200, found.text
        return found.json()["reports"]

    def version(self, folio: str) -> int:
        return len(self.rpc(ADMIN, "report_events", folio, 0)[1])

    def rpc(self, who: Who, method: str, *args: Any) -> tuple[int, Any]:
        """(200, result), or the refusal's status and message."""
        if who.column not in self.proxies:
            config = {"AMQP_URI": self.stack.amqp_uri}
            proxy = ClusterRpcProxy(config, context_data=who.context(), timeout=20)
            self.proxies[who.column] = (proxy, proxy.start())
        try:
            return 200, getattr(self.proxies[who.column][1].tracking, method)(*args)
        except RemoteError as error:
            if error.exc_type not in RPC_STATUS:
                pytest.fail(f"{method} answered {error.exc_type}: {error.value}")
            return RPC_STATUS[error.exc_type], error.value

    def close(self) -> None:
        for proxy, _ in self.proxies.values():
            proxy.stop()
        self.http.close()


def answer(response: requests.Response) -> tuple[int, Any]:
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def shows(body: Any, view: str) -> None:
    """The comments the view's audience reads are there, the others are not; a staff or crew
    view is the staff view (it has the report's id), a citizen's is not."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    for marker in (PUBLIC, PRIVATE, INTERNAL):
        assert (marker in text) == (marker in SHOWN[view]), (view, marker)
    if isinstance(body, dict):
        assert ("report_id" in body) == (view in ("staff", "crew")), view


def new_key() -> str:
    return str(uuid.uuid4())


# ---- doors: each sets up, calls and judges one case ---------------------------------------


@dataclass(frozen=True)
class Expect:
    """What one case must see: allowed (2xx) or refused with `refused`; a read's `view`; and
    `scope` (`dept`, `own`) when the cell allows only some reports."""

    allowed: bool
    refused: int | None = None
    view: str | None = None
    scope: str | None = None


# A door is called as door(world, who, target, expect): it sets up, calls and judges.
Door = Callable[..., None]
DOORS: dict[tuple[str, str], Door] = {}
ABOUT_A_REPORT: set[tuple[str, str]] = set()  # doors whose `dept`/`own` cells name reports


def door(service: str, *names: str, report: bool = False) -> Callable[[Door], Door]:
    def register(function: Door) -> Door:
        for name in names:
            DOORS[service, name] = functools.partial(function, name=name)
            if report:
                ABOUT_A_REPORT.add((service, name))
        return function
    return register


def judge(world: World, status: int, body: Any, expect: Expect,
          before: tuple[int, ...] | None) -> None:
    if expect.allowed:
        assert 200 <= status < 300, (status, body)
        return
    assert status == expect.refused, (status, body)
    assert world.writes.now() == before, f"a refused call ({status}) wrote"


def counted(world: World, expect: Expect) -> tuple[int, ...] | None:
    """What is written before a call that must write nothing (an allowed one may)."""
    return None if expect.allowed else world.writes.now()


def http(world: World, method: str, service: str, path: str, who: Who, expect: Expect,
         **kwargs: Any) -> tuple[int, Any]:
    """One HTTP call with the principal's bearer token (if any), judged."""
    headers = {**who.headers(), **kwargs.pop("headers", {})}
    before = counted(world, expect)
    status, body = answer(world.http.request(method, world.url(service, path), headers=headers,
                                             timeout=30, **kwargs))
    judge(world, status, body, expect, before)
    return status, body


def rpc(world: World, who: Who, expect: Expect, method: str, *args: Any) -> tuple[int, Any]:
    before = counted(world, expect)
    status, body = world.rpc(who, method, *args)
    judge(world, status, body, expect, before)
    return status, body


def page(service: str, path: Callable[[World], str]) -> Door:
    def run(world, who, target, expect):
        http(world, "GET", service, path(world), who, expect)
    return run
