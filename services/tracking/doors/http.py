"""Tracking's JSON API (a mixin of TrackingService): the RPC API's use cases over HTTP."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, json_response, read_json
from shared.chassis.openapi import ACCESS_TOKEN, ANYONE, BEARER, Door, api

from .. import access, schemas
from ..errors import http_errors
from ..write import commands
from ..write.application import ReportNotFound
from .rpc import CITIZEN_FEEDBACK, OPEN_REPORT, SEARCH, ReportsRpc

# POST /reports/{folio}/{name}: each command is a path of its own in GET /openapi.json.
COMMAND_DOORS = {
    **{name: Door(body=command.schema, auth=(BEARER,), errors=(409,))
       for name, command in commands.COMMANDS.items()},
    **dict.fromkeys(("confirm", "dispute"), Door(body=CITIZEN_FEEDBACK, errors=(403, 409))),
    # Prices come from crews over RPC; the public door takes the items without them.
    "log_materials": Door(body=schemas.MaterialsSchema(
        exclude=[f"items.{f}" for f in commands.PRICE_FIELDS]), auth=(BEARER,), errors=(409,)),
}


class ReportsApi(ReportsRpc):
    """/reports…: staff, other systems and the citizen's app, with the RPC API's use cases."""

    @http("POST", "/reports")
    @api(body=OPEN_REPORT, answers={201: schemas.OpenedSchema}, auth=(BEARER,))
    @http_errors
    def http_open_report(self, request: Request) -> Response:
        """POST /reports {"service_code": "bache", ..., "channel": "window"} -> 201 {folio, ...}"""
        return json_response(self.open_report(read_json(request)), 201)

    @http("POST", "/reports/<string:folio>/<string:name>")
    @api(path=schemas.FolioPathSchema, headers=schemas.CommandKeySchema,
         answers={200: schemas.REPORT_STATE}, each={"name": COMMAND_DOORS})
    @http_errors
    def http_command(self, request: Request, folio: str, name: str) -> Response:
        """POST /reports/QRO-2026-000123/assign {"crew_id": "C-07"} -> 200 {step, version, ...}
        (an `Idempotency-Key` header, or `step_id` in the body, makes a repeat record nothing)"""
        if name not in (*commands.COMMANDS, "confirm", "dispute"):
            raise KeyError(f"unknown command {name!r}")
        payload = commands.keyed(commands.unpriced(name, read_json(request)), request.headers)
        if name in ("confirm", "dispute"):
            return json_response(self.citizen_feedback(folio, name, payload))
        state = commands.execute(self.tracking.app, self.auth, name, folio, payload)
        return json_response(commands.state(state))

    @http("GET", "/reports/<string:folio>/events")
    @api(path=schemas.FolioPathSchema, query=schemas.ReportEventsSchema(only=["after_version"]),
         answers={200: schemas.EventsSchema}, auth=(BEARER,))
    @http_errors
    def http_report_events(self, request: Request, folio: str) -> Response:
        """GET /reports/QRO-2026-000123/events?after_version=3 -> {"events": [CloudEvent, ...]}
        (staff and systems, with a bearer token)."""
        after = request.args.get("after_version", "0")
        return json_response({"events": self.report_events(folio, after)})

    @http("GET", "/reports/<string:folio>")
    @api(path=schemas.FolioPathSchema, query=schemas.TokenQuerySchema,
         answers={200: schemas.REPORT_VIEWS}, auth=(ANYONE, ACCESS_TOKEN, BEARER))
    @http_errors
    def http_get_report(self, request: Request, folio: str) -> Response:
        """GET /reports/QRO-2026-000123 -> the timeline (JSON). `X-Access-Token` (or ?token=)
        opens the private view; a staff bearer token the staff view."""
        if request.headers.get("Authorization"):
            return json_response(_found(self.get_report_staff(folio), folio))
        token = request.headers.get("X-Access-Token") or request.args.get("token")
        return json_response(_found(self._view(folio, token, staff=False), folio))

    @http("GET", "/reports")
    @api(query=SEARCH, answers={200: schemas.SearchResultsSchema}, auth=(BEARER,))
    @http_errors
    def http_search(self, request: Request) -> Response:
        """GET /reports?status=open&department=obras&bbox=20.5,-100.5,20.7,-100.3 (staff)"""
        principal = self.auth.require(*access.SEARCH_ROLES)
        filters = access.search_filters(principal, SEARCH.load(request.args.to_dict()))
        return json_response({"reports": self._caught_up().search(**filters)})


def _found(view: dict[str, Any] | None, folio: str) -> dict[str, Any]:
    if view is None:
        raise ReportNotFound(folio)
    return view
