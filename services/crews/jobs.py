"""The work-list doors (a mixin of CrewsService): a crew's jobs, a department's board, the crews
to suggest for a report; and the consumer that keeps the work lists from tracking's events.

The consumer is the chassis' ordered, idempotent one: each report's events applied once, in
stream-version order; a gap (this queue was made after a report's first events, a message came
back late) is filled by asking tracking for the report's events. Reads answer what the work
lists hold: the bus brings a step here a moment after tracking stored it.
"""

from __future__ import annotations

import math
from typing import Any

from marshmallow import Schema, ValidationError, fields
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response
from shared.chassis.auth import Forbidden, Principal, WorkerAuth
from shared.chassis.consumer import cloud_event_handler
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc
from shared.chassis.rpcclient import RemoteService
from shared.chassis.sqlstore import SqlStore, Tx
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import TYPE_PREFIX, LocationSchema
from shared.contracts.fields import Line

from . import worklists
from .dependencies import Crews
from .errors import ERRORS, http_errors
from .schemas import CrewAnswer

CONSUMER_NAME = "crews.consume_report_event"  # the consumer's name: its queue and its claims
BOARD_READERS = ("supervisor", "operator", "auditor")  # and admin
SUGGESTERS = ("supervisor", "operator")  # who assigns, and the 070 desk that helps


class DepartmentQuery(Schema):
    department = Line(64, load_default=None)


class FolioPath(Schema):
    folio = Line(32, required=True, min_length=1)


class JobAnswer(Schema):
    folio = fields.String(required=True)
    step = fields.String(required=True)
    status = fields.String(required=True)
    next_steps = fields.List(fields.String(), required=True)
    crew_id = fields.String(allow_none=True)
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    department = fields.String(required=True)
    description = fields.String(required=True)
    location = fields.Nested(LocationSchema, required=True)  # as the report's `opened` says
    photos = fields.List(fields.String(), required=True)
    due_at = fields.String(allow_none=True)
    priority = fields.String(allow_none=True)
    opened_at = fields.String(required=True)
    assigned_at = fields.String(allow_none=True)
    updated_at = fields.String(required=True)
    version = fields.Integer(required=True)


class MyJobsAnswer(Schema):
    crew = fields.Nested(CrewAnswer, allow_none=True)  # the member's crew
    jobs = fields.List(fields.Nested(JobAnswer), required=True)


class BoardCrew(CrewAnswer):
    open_jobs = fields.Integer(required=True)


class BoardAnswer(Schema):
    department = fields.String(allow_none=True)
    crews = fields.List(fields.Nested(BoardCrew), required=True)
    jobs = fields.List(fields.Nested(JobAnswer), required=True)


class Suggestion(BoardCrew):
    distance_km = fields.Float(allow_none=True)


class SuggestionsAnswer(Schema):
    folio = fields.String(required=True)
    department = fields.String(required=True)
    crews = fields.List(fields.Nested(Suggestion), required=True)


DEPARTMENT_QUERY = DepartmentQuery()
FOLIO_PATH = FolioPath()
EARTH_RADIUS_KM = 6371.0


def distance_km(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Straight-line (great-circle) distance between two places; None if either is unknown."""
    if None in (a.get("lat"), a.get("long"), b.get("lat"), b.get("long")):
        return None
    lat1, lat2 = math.radians(a["lat"]), math.radians(b["lat"])
    dlat, dlong = lat2 - lat1, math.radians(b["long"] - a["long"])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlong / 2) ** 2
    return round(2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h))), 3)


def department_of(principal: Principal, asked: str | None) -> str | None:
    """The department a list shows: the token's own, unless an admin (or a city-wide role)
    asks for one; a department supervisor asking for another is refused."""
    if "admin" in principal.roles or not principal.department:
        return asked
    if asked and asked != principal.department:
        raise Forbidden(f"you see your department ({principal.department}), not {asked}")
    return principal.department


class WorkListDoors:
    """/field/jobs, /board, /reports/{folio}/suggested-crews; and the report events' consumer."""

    # CrewsService's dependencies, annotated and never assigned: nameko takes no provider here.
    crews: Crews
    auth: WorkerAuth
    tracking: RemoteService
    views: SqlStore

    @cloud_event_handler(f"{TYPE_PREFIX}*", store="views", catch_up="fetch_report_events",
                         batch=20)
    def consume_report_event(self, events: list[CloudEvent], tx: Tx) -> None:
        worklists.apply(tx, events)

    @rpc(errors=ERRORS)
    def catch_up_work_lists(self, status: str = "open") -> dict[str, int]:
        """`expediente call crews catch_up_work_lists '"open"' --role admin`: bring the work
        lists up to date with every report tracking holds (`open`, `closed` or `all`), e.g.
        when crews joins a city whose reports were opened before its queue existed. Each
        report's missing events are applied as the consumer applies them: in order, once, so
        it may run while events flow and be run again."""
        self.auth.require("admin")
        if status not in ("open", "closed", "all"):
            raise ValidationError({"status": ["open, closed or all"]})
        filters: dict[str, Any] = {} if status == "all" else {"status": status}
        reports = applied = 0
        while True:
            page = self.tracking.call("search_reports", {
                **filters, "limit": 1000, "offset": reports, "order": "opened_at asc"},
                on_behalf_of=self.auth.authorization())
            for row in page:
                for event in self.fetch_report_events(row["folio"], 0):
                    applied += bool(self.consume_report_event(CloudEvent.from_dict(event),
                                                              CONSUMER_NAME))
            reports += len(page)
            if len(page) < 1000:
                return {"reports": reports, "events_applied": applied}

    def fetch_report_events(self, folio: str, after_version: int) -> list[dict[str, Any]]:
        """A report's events after a version, from tracking (the consumer found a gap)."""
        events: list[dict[str, Any]] = self.tracking.call("report_events", folio, after_version)
        return events

    @http("GET", "/field/jobs")
    @api(answers={200: MyJobsAnswer}, auth=(BEARER,))
    @http_errors
    def http_my_jobs(self, request: Request) -> Response:
        """GET /field/jobs -> {"crew": the member's crew, "jobs": its open jobs, most urgent
        first, each with its step and the field steps it may take next}; a supervisor gets
        their department's open jobs"""
        principal = self.auth.require("crew", "supervisor")
        if "crew" in principal.roles and principal.crew_id:
            # The crew's name and department change rarely: read without waiting for the views
            # (a phone asks often; the jobs below are the work lists' own table).
            crew = self.crews.runtime.projector.crew(principal.crew_id)
            jobs = worklists.jobs(self.views, crew_id=principal.crew_id)
        else:
            crew = None
            jobs = worklists.jobs(self.views, department=department_of(principal, None))
        return json_response({"crew": crew, "jobs": [worklists.shown(job) for job in jobs]})

    @http("GET", "/board")
    @api(query=DepartmentQuery, answers={200: BoardAnswer}, auth=(BEARER,))
    @http_errors
    def http_board(self, request: Request) -> Response:
        """GET /board?department=obras_publicas -> the department's crews (with their open jobs
        counted) and its open jobs; a supervisor's token names their own department"""
        principal = self.auth.require(*BOARD_READERS)
        asked = DEPARTMENT_QUERY.load(request.args.to_dict())["department"]
        department = department_of(principal, asked)
        crews = self.crews.fresh_views().crews(department)
        jobs = worklists.jobs(self.views, department=department)
        load = {job["crew_id"]: 0 for job in jobs if job["crew_id"]}
        for job in jobs:
            if job["crew_id"]:
                load[job["crew_id"]] += 1
        return json_response({
            "department": department,
            "crews": [{**crew, "open_jobs": load.get(crew["code"], 0)} for crew in crews],
            "jobs": [worklists.shown(job) for job in jobs]})

    @http("GET", "/reports/<string:folio>/suggested-crews")
    @api(path=FolioPath, answers={200: SuggestionsAnswer}, auth=(BEARER,))
    @http_errors
    def http_suggestions(self, request: Request, folio: str) -> Response:
        """GET /reports/QRO-2026-000123/suggested-crews -> the available crews on shift of the
        report's department, nearest first (straight line from their last known position;
        those with none last), each with its open jobs. The assignment itself goes to
        tracking."""
        principal = self.auth.require(*SUGGESTERS)
        folio = FOLIO_PATH.load({"folio": folio})["folio"]
        job = worklists.job(self.views, folio)
        if job is None:
            raise worklists.JobNotFound(f"no report {folio} in the work lists")
        department_of(principal, job["department"])
        place = {"lat": job["lat"], "long": job["long"]}
        load = worklists.workload(self.views, job["department"])
        ready = [crew for crew in self.crews.fresh_views().crews(job["department"])
                 if crew["availability"] == "available" and crew["on_shift"]]
        suggestions = [{**crew, "open_jobs": load.get(crew["code"], 0),
                        "distance_km": distance_km(place, crew["position"] or {})}
                       for crew in ready]
        suggestions.sort(key=lambda crew: (crew["distance_km"] is None,
                                           crew["distance_km"] or 0.0, crew["open_jobs"],
                                           crew["code"]))
        return json_response({"folio": folio, "department": job["department"],
                              "crews": suggestions})
