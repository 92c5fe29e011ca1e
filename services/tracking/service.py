"""TrackingService: tracking's RPC and HTTP entrypoints — load, call, dump; nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from prometheus_client import Gauge
from werkzeug.wrappers import Request, Response

import shared.chassis  # noqa: F401  (must come before anything that loads psycopg)
from shared.chassis import health, openapi  # modules: `nameko run` takes classes for services
from shared.chassis.auth import Auth
from shared.chassis.gctuning import GcTuning
from shared.chassis.http import http, json_response, read_json, static_file
from shared.chassis.metrics import RequestMetrics
from shared.chassis.openapi import ACCESS_TOKEN, ANYONE, BEARER, HTML, Door, api
from shared.chassis.rpc import rpc
from shared.chassis.secrets import SecretsCheck

from . import access, schemas
from .dependencies import TrackingRuntime
from .errors import ERRORS, http_errors
from .read.pages import render_lookup, render_status
from .read.projection import ReportProjector
from .write import commands

EVENTS_STORED = Gauge("expediente_events_stored", "Events in the notification log", ["service"])
OPEN_REPORT = schemas.OpenReportSchema()
CITIZEN_FEEDBACK = schemas.CitizenFeedbackSchema()
SEARCH = schemas.SearchSchema()
REPORT_EVENTS = schemas.ReportEventsSchema()
OPEN311_REQUESTS = schemas.Open311RequestsSchema()
OPEN311_UPDATES = schemas.Open311UpdatesSchema()
STATIC = Path(__file__).with_name("read") / "static"
# POST /reports/{folio}/{name}: each command is a path of its own in GET /openapi.json.
COMMAND_DOORS = {
    **{name: Door(body=command.schema, auth=(BEARER,), errors=(409,))
       for name, command in commands.COMMANDS.items()},
    **dict.fromkeys(("confirm", "dispute"), Door(body=CITIZEN_FEEDBACK, errors=(403, 409))),
}


class TrackingService(health.Health, openapi.ApiDocument):
    name = "tracking"

    tracking = TrackingRuntime()
    gc_tuning = GcTuning()
    auth = Auth()
    metrics = RequestMetrics()
    secrets_check = SecretsCheck()

    # ---- RPC: commands -------------------------------------------------------------------------

    @rpc(errors=ERRORS)
    def open_report(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Open a report and return its folio and the citizen's access token.

        Example payload: {"service_code": "bache", "service_name": "Bache", "department": "obras",
        "description": "Bache profundo", "location": {"lat": 20.59, "long": -100.39},
        "channel": "phone_070", "sla_hours": 72}; a caller that may send it again adds
        "request_key" and the citizen's "access_token": a repeat answers with the same report."""
        principal = self.auth.require(*commands.OPEN_ROLES)
        data = OPEN_REPORT.load(payload or {})
        access.check_open(principal, data["department"])
        channel = data.pop("channel")
        actor = commands.actor_for(principal, commands.OPEN_ROLES, channel)
        opened = self.tracking.app.open_report(actor=actor, **data)
        return {
            "folio": opened.folio,
            "access_token": opened.access_token,
            "opened_at": opened.opened_at.isoformat(),
            "due_at": opened.due_at.isoformat() if opened.due_at else None,
            "version": opened.version,
        }

    @rpc(errors=ERRORS)
    def run_command(self, name: str, folio: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run one staff command (`assign`, `arrive`, `close_report`…) on a report."""
        if name not in commands.COMMANDS:
            raise KeyError(f"unknown command {name!r}; known: {', '.join(commands.COMMANDS)}")
        return commands.state(commands.execute(self.tracking.app, self.auth, name, folio, payload))

    @rpc(errors=ERRORS)
    def citizen_feedback(self, folio: str, verdict: str, payload: dict[str, Any]) -> dict:
        """The citizen says whether it was really fixed (`confirm` or `dispute`)."""
        data = CITIZEN_FEEDBACK.load(payload or {})
        app = self.tracking.app
        use_case = {"confirm": app.citizen_confirm, "dispute": app.citizen_dispute}[verdict]
        return commands.state(use_case(folio, data.pop("access_token"), **data))

    # ---- RPC: queries --------------------------------------------------------------------------

    @rpc(errors=ERRORS)
    def get_report(self, folio: str, access_token: str | None = None) -> dict[str, Any] | None:
        """The citizen's view; with the access token, the private view."""
        return self._view(folio, access_token, staff=False)

    @rpc(errors=ERRORS)
    def get_report_staff(self, folio: str) -> dict[str, Any] | None:
        """Everything about a report, internal notes and actors included (staff, within their
        department; a crew reads its own jobs without the internal notes: docs/access.md)."""
        principal = self.auth.require(*access.STAFF_VIEW_ROLES)
        view = self.tracking.fresh_views().staff_view(folio)
        return None if view is None else access.staff_view_for(principal, view)

    @rpc(errors=ERRORS)
    def search_reports(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Summary rows (staff; a department's token its department, a crew its own jobs)."""
        principal = self.auth.require(*access.SEARCH_ROLES)
        filters = access.search_filters(principal, SEARCH.load(filters or {}))
        return self._caught_up().search(**filters)

    @rpc(errors=ERRORS)
    def open311_requests(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Public data of the reports that match (Open311 GET requests; no auth, no personal
        data). Example filters: {"service_code": "bache,luminaria", "status": "open",
        "opened_from": "2026-01-01T00:00:00-06:00", "bbox": "20.5,-100.5,20.7,-100.3"}"""
        data = OPEN311_REQUESTS.load(filters or {})
        return self._caught_up().open311_requests(**data)

    @rpc(errors=ERRORS)
    def open311_updates(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Public timeline entries after `since`, oldest first (Open311 servicerequestupdates;
        no auth). Example filters: {"since": "2026-03-01T12:00:00Z", "limit": 100}"""
        data = OPEN311_UPDATES.load(filters or {})
        return self._caught_up().open311_updates(**data)

    @rpc(errors=ERRORS)
    def report_events(self, folio: str, after_version: int = 0) -> list[dict[str, Any]]:
        """The report's events after `after_version`, oldest first, as the CloudEvents (dicts)
        the relay publishes: a consumer that sees a gap fetches what it missed (staff and
        systems)."""
        principal = self.auth.require(*access.EVENTS_ROLES)
        data = REPORT_EVENTS.load({"folio": folio, "after_version": after_version})
        if access.scoped(principal, access.EVENTS_ROLES):
            access.guard(principal, access.EVENTS_ROLES)(self.tracking.app.get_report(folio))
        return [event.to_dict() for event in self.tracking.report_events(**data)]

    # ---- HTTP ----------------------------------------------------------------------------------

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
        payload = commands.keyed(read_json(request), request.headers)
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

    @http("GET", "/", html=True)
    @api(query=schemas.LookupQuerySchema, answers={200: HTML, 303: None})
    def http_home(self, request: Request) -> Response:
        """The lookup form; GET /?folio=QRO-2026-000123 (the form sent) goes to its page."""
        folio = (request.args.get("folio") or "").strip()
        if folio:
            return Response(status=303, headers={"Location": f"/seguimiento/{quote(folio, '')}"})
        return Response(render_lookup(None), mimetype="text/html")

    @http("GET", "/static/<string:name>")
    @api(answers={200: {"text/css": None}})
    def http_static(self, request: Request, name: str) -> Response:
        """The pages' stylesheet, e.g. GET /static/status.css."""
        return static_file(STATIC, name)

    @http("GET", "/seguimiento/<string:folio>", html=True)
    @api(answers={200: HTML, 404: HTML})
    def http_status_page(self, request: Request, folio: str) -> Response:
        """The citizen's status page (HTML, Spanish)."""
        view = self._view(folio, None, staff=False)
        status = 200 if view else 404
        return Response(render_status(folio, view), status=status, mimetype="text/html")

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """GET /readyz (shared/chassis/health.py): ready while the store answers and neither the
        views nor the relay lag beyond READY_MAX_LAG_EVENTS / _SECONDS (both lags shown)."""
        return self.tracking.runtime.readiness()

    def refresh_metrics(self) -> None:
        """Before GET /metrics (shared/chassis/health.py) answers."""
        EVENTS_STORED.labels(self.name).set(self.tracking.app.recorder.max_notification_id() or 0)
        self.tracking.runtime.refresh_gauges()  # the followers' lags

    def _caught_up(self) -> ReportProjector:
        """The projector, once it holds what was saved a moment ago (read your own writes); it
        waits at most READ_WAIT_SECONDS and never writes."""
        return self.tracking.fresh_views()

    def _view(self, folio: str, access_token: str | None, staff: bool) -> dict[str, Any] | None:
        if access_token and not self.tracking.app.check_access_token(folio, access_token):
            raise PermissionError("the access token does not open this report")
        projector = self.tracking.fresh_views()  # a command may have landed a moment ago
        read = projector.private_view if access_token else projector.public_view
        return read(folio)


def _found(view: dict[str, Any] | None, folio: str) -> dict[str, Any]:
    from .write.application import ReportNotFound

    if view is None:
        raise ReportNotFound(folio)
    return view
