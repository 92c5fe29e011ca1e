"""Crews' doors (mixins of CrewsService): crews and the materials catalog over HTTP, the
material cost over RPC, and the probes. Validate, call the application, dump.

Who may do what (docs/access.md): supervisors and admins manage crews, a supervisor whose token
names a department only that department's; a crew member moves only their own crew's shift,
availability and position; every staff role reads the materials catalog, admins change it.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from shared.chassis import health
from shared.chassis.answers import json_response, read_json
from shared.chassis.auth import Forbidden, Principal, WorkerAuth
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc

from . import schemas
from .dependencies import Crews
from .errors import ERRORS, http_errors
from .read import view_of

MANAGERS = ("supervisor",)  # and admin, who passes every check
CREW_READERS = ("supervisor", "operator", "auditor", "crew")
STAFF = ("operator", "supervisor", "crew", "billing_clerk", "auditor", "system")

NEW_CREW = schemas.NewCrewSchema()
MEMBER = schemas.MemberSchema()
SHIFT = schemas.ShiftSchema()
AVAILABILITY = schemas.AvailabilitySchema()
POSITION = schemas.PositionSchema()
CREWS_QUERY = schemas.CrewsQuerySchema()
NEW_MATERIAL = schemas.NewMaterialSchema()
PRICE = schemas.PriceSchema()
COST_QUERY = schemas.CostQuerySchema()


def check_department(principal: Principal, department: str, code: str) -> None:
    """A token that names a department reaches only that department's crews."""
    if "admin" in principal.roles:
        return
    if principal.department and principal.department != department:
        raise Forbidden(f"crew {code} belongs to {department}, not to your department "
                        f"({principal.department})")


class CrewDoors:
    """/crews: the city's crews, their members, shifts, availability and last position."""

    # CrewsService's dependencies, annotated and never assigned: nameko takes no provider here.
    crews: Crews
    auth: WorkerAuth

    @http("GET", "/crews")
    @api(query=schemas.CrewsQuerySchema, answers={200: schemas.CrewsAnswer}, auth=(BEARER,))
    @http_errors
    def http_crews(self, request: Request) -> Response:
        """GET /crews?department=obras_publicas -> {"crews": [{"code": "C-07", ...}]}; a token
        that names a department sees that department's crews, a crew member their own crew."""
        principal = self.auth.require(*CREW_READERS)
        department = CREWS_QUERY.load(request.args.to_dict())["department"]
        if principal.department and "admin" not in principal.roles:
            department = principal.department
        crews = self.crews.fresh_views().crews(department)
        if principal.roles and set(principal.roles) <= {"crew"}:
            crews = [crew for crew in crews if crew["code"] == principal.crew_id]
        return json_response({"crews": crews})

    @http("POST", "/crews", max_body=4 * 1024)
    @api(body=NEW_CREW, answers={201: schemas.CrewAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_create_crew(self, request: Request) -> Response:
        """POST /crews {"code": "C-07", "name": "Bacheo Centro", "department": "obras_publicas"}
        -> 201 the crew (no members yet, off shift)"""
        principal = self.auth.require(*MANAGERS)
        data = NEW_CREW.load(read_json(request))
        check_department(principal, data["department"], data["code"])
        self.crews.app.create_crew(data["code"], data["name"], data["department"],
                                   by=principal.subject)
        return json_response(self._crew(data["code"]), 201)

    @http("GET", "/crews/<string:code>")
    @api(answers={200: schemas.CrewAnswer}, auth=(BEARER,))
    @http_errors
    def http_crew(self, request: Request, code: str) -> Response:
        """GET /crews/C-07 -> the crew as it stands"""
        principal = self.auth.require(*CREW_READERS, crew_id=code)
        crew = self.crews.app.crew(code)
        check_department(principal, crew.department, code)
        return json_response(self._crew(code))

    @http("POST", "/crews/<string:code>/members", max_body=4 * 1024)
    @api(body=MEMBER, answers={200: schemas.CrewAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_join(self, request: Request, code: str) -> Response:
        """POST /crews/C-07/members {"member_id": "pedro", "name": "Pedro Ramírez"} -> the crew"""
        principal = self._manager_of(code)
        data = MEMBER.load(read_json(request))
        self.crews.app.join(code, data["member_id"], data["name"], by=principal.subject)
        return json_response(self._crew(code))

    @http("DELETE", "/crews/<string:code>/members/<string:member_id>")
    @api(answers={200: schemas.CrewAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_leave(self, request: Request, code: str, member_id: str) -> Response:
        """DELETE /crews/C-07/members/pedro -> the crew without Pedro"""
        principal = self._manager_of(code)
        self.crews.app.leave(code, member_id, by=principal.subject)
        return json_response(self._crew(code))

    @http("POST", "/crews/<string:code>/shift", max_body=4 * 1024)
    @api(body=SHIFT, answers={200: schemas.CrewAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_shift(self, request: Request, code: str) -> Response:
        """POST /crews/C-07/shift {"action": "start", "at": "2026-12-05T08:00:00-06:00"} (the
        crew itself, or its supervisor; `at` defaults to now) -> the crew, available"""
        principal = self._crew_or_manager(code)
        data = SHIFT.load(read_json(request))
        at = data["at"] or self.crews.now()
        if data["action"] == "start":
            self.crews.app.start_shift(code, at, by=principal.subject)
        else:
            self.crews.app.end_shift(code, at, by=principal.subject)
        return json_response(self._crew(code))

    @http("POST", "/crews/<string:code>/availability", max_body=4 * 1024)
    @api(body=AVAILABILITY, answers={200: schemas.CrewAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_availability(self, request: Request, code: str) -> Response:
        """POST /crews/C-07/availability {"availability": "busy"} -> the crew"""
        principal = self._crew_or_manager(code)
        data = AVAILABILITY.load(read_json(request))
        self.crews.app.set_availability(code, data["availability"], by=principal.subject)
        return json_response(self._crew(code))

    @http("POST", "/crews/<string:code>/position", max_body=4 * 1024)
    @api(body=POSITION, answers={200: schemas.CrewAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_position(self, request: Request, code: str) -> Response:
        """POST /crews/C-07/position {"lat": 20.59, "long": -100.39, "at": "…"} -> the crew (a
        fix older than the last one is kept out)"""
        principal = self._crew_or_manager(code)
        data = POSITION.load(read_json(request))
        self.crews.app.report_position(code, data["lat"], data["long"],
                                       data["at"] or self.crews.now(), by=principal.subject)
        return json_response(self._crew(code))

    # ---- helpers -------------------------------------------------------------------------------

    def _crew(self, code: str) -> dict[str, Any]:
        """One crew as it stands, from its stream (the views serve lists)."""
        return view_of(self.crews.app.crew(code))

    def _manager_of(self, code: str) -> Principal:
        principal = self.auth.require(*MANAGERS)
        check_department(principal, self.crews.app.crew(code).department, code)
        return principal

    def _crew_or_manager(self, code: str) -> Principal:
        principal = self.auth.require("supervisor", "crew", crew_id=code)
        check_department(principal, self.crews.app.crew(code).department, code)
        return principal


class MaterialDoors:
    """/materials: the catalog crews log materials from, with each price's effective moment."""

    crews: Crews
    auth: WorkerAuth

    @http("GET", "/materials")
    @api(answers={200: schemas.MaterialsAnswer}, auth=(BEARER,))
    @http_errors
    def http_materials(self, request: Request) -> Response:
        """GET /materials -> {"materials": [{"code": "MEZ-ASF", "unit": "m3", "prices": [...]}]}"""
        self.auth.require(*STAFF)
        return json_response({"materials": self.crews.fresh_views().materials()})

    @http("POST", "/materials", max_body=4 * 1024)
    @api(body=NEW_MATERIAL, answers={201: schemas.CostAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_add_material(self, request: Request) -> Response:
        """POST /materials {"code": "MEZ-ASF", "description": "Mezcla asfáltica en frío",
        "unit": "m3", "unit_cost": "1850.00"} (admin; `effective_at` defaults to now)
        -> 201 one unit priced now"""
        principal = self.auth.require("admin")
        data = NEW_MATERIAL.load(read_json(request))
        at = data["effective_at"] or self.crews.now()
        self.crews.app.add_material(data["code"], data["description"], data["unit"],
                                    data["unit_cost"], at, by=principal.subject)
        return json_response(self.crews.app.cost_of(data["code"], "1", at), 201)

    @http("POST", "/materials/<string:code>/prices", max_body=4 * 1024)
    @api(body=PRICE, answers={200: schemas.MaterialAnswer}, auth=(BEARER,))
    @http_errors
    def http_change_price(self, request: Request, code: str) -> Response:
        """POST /materials/MEZ-ASF/prices {"unit_cost": "1990.50", "effective_at":
        "2027-01-01T00:00:00-06:00"} (admin) -> the material with every price"""
        principal = self.auth.require("admin")
        data = PRICE.load(read_json(request))
        self.crews.app.change_price(code, data["unit_cost"], data["effective_at"],
                                    by=principal.subject)
        return json_response(view_of(self.crews.app.material(code)))

    @http("GET", "/materials/<string:code>/cost")
    @api(query=schemas.CostQuerySchema, answers={200: schemas.CostAnswer}, auth=(BEARER,))
    @http_errors
    def http_cost(self, request: Request, code: str) -> Response:
        """GET /materials/MEZ-ASF/cost?quantity=0.5&at=2027-01-15T10:00:00-06:00 -> the unit
        cost in force then and what the quantity costs, to the centavo"""
        self.auth.require(*STAFF)
        query = COST_QUERY.load(request.args.to_dict())
        return json_response(self.crews.app.cost_of(code, query["quantity"],
                                                    query["at"] or self.crews.now()))

    @rpc(errors=ERRORS)
    def material_cost(self, code: str, quantity: str, at: str | None = None) -> dict[str, Any]:
        """`crews.material_cost("MEZ-ASF", "0.5", "2027-01-15T10:00:00-06:00")` -> as GET
        /materials/<code>/cost (any staff or system token)."""
        self.auth.require(*STAFF)
        query = COST_QUERY.load({"quantity": quantity, **({"at": at} if at else {})})
        return self.crews.app.cost_of(code, query["quantity"], query["at"] or self.crews.now())


class CrewsHealth(health.Health):
    """/healthz, /readyz and /metrics (shared/chassis/health.py) with crews' own checks."""

    crews: Crews

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while the store answers and the views do not lag beyond the bounds."""
        return self.crews.runtime.readiness()

    def refresh_metrics(self) -> None:
        self.crews.runtime.refresh_gauges()
