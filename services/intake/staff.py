"""The staff entry for the 070 line and walk-in windows (a mixin of IntakeService): operators
and clerks enter reports for callers and visitors, look up any folio, mark duplicates."""

from __future__ import annotations

from marshmallow import ValidationError
from werkzeug.wrappers import Request, Response

from shared.chassis.auth import WorkerAuth
from shared.chassis.http import http, json_response, read_json
from shared.chassis.openapi import BEARER, api
from shared.contracts.views import ReportStateSchema, StaffViewSchema

from . import schemas
from .app_api import idempotency_key, service_json, submission
from .application import IntakeApplication
from .catalog import DefinitionSchema
from .errors import NotFound, http_errors

STAFF_REPORT = schemas.StaffReportSchema()
MARK_DUPLICATE = schemas.MarkDuplicateSchema()
DEFINITION = DefinitionSchema(partial=("code",))  # PUT's body in GET /openapi.json (URL: code)
STAFF_ROLES = ("operator", "supervisor")


class StaffApi:
    """/staff/…: 070 operators and window clerks, with their own bearer token; tracking records
    them as the actor, with the channel."""

    # IntakeService's dependencies, annotated and never assigned: nameko takes no provider here.
    intake: IntakeApplication
    auth: WorkerAuth

    @http("POST", "/staff/reports")
    @api(body=STAFF_REPORT, headers=schemas.StaffKeySchema, answers={201: schemas.ReceiptSchema},
         auth=(BEARER,), errors=(409, 422))
    @http_errors
    def staff_report(self, request: Request) -> Response:
        """POST /staff/reports {"channel": "phone_070", "service_code": "bache", ...,
        "contact": {"phone": "+52 442 123 4567"}} -> 201 receipt (read the folio to the caller)"""
        self.auth.require(*STAFF_ROLES)
        data = STAFF_REPORT.load(read_json(request))
        channel = data.pop("channel")
        key = idempotency_key(request, required=False)
        receipt = self.intake.submit(submission(data, channel, key and f"staff:{key}"),
                                     on_behalf_of=request.headers["Authorization"])
        return json_response(receipt, 201)

    @http("GET", "/staff/reports/<string:folio>")
    @api(answers={200: StaffViewSchema}, auth=(BEARER,))
    @http_errors
    def staff_lookup(self, request: Request, folio: str) -> Response:
        """Any folio, with internal notes and actors (operators look up for callers)."""
        self.auth.require(*STAFF_ROLES)
        view = self.intake.tracking.remote.call(
            "get_report_staff", folio, on_behalf_of=request.headers["Authorization"])
        if view is None:
            raise NotFound(f"no report has folio {folio}")
        return json_response(view)

    @http("POST", "/staff/reports/<string:folio>/mark_duplicate")
    @api(body=MARK_DUPLICATE, answers={200: ReportStateSchema}, auth=(BEARER,), errors=(409,))
    @http_errors
    def staff_mark_duplicate(self, request: Request, folio: str) -> Response:
        """POST /staff/reports/QRO-2026-000124/mark_duplicate {"duplicate_of": "QRO-2026-000123"}"""
        self.auth.require(*STAFF_ROLES)
        data = MARK_DUPLICATE.load(read_json(request))
        state = self.intake.tracking.remote.call(
            "run_command", "mark_duplicate", folio, data,
            on_behalf_of=request.headers["Authorization"])
        return json_response(state)

    @http("PUT", "/staff/services/<string:code>")
    @api(body=DEFINITION, answers={200: schemas.CatalogServiceSchema}, auth=(BEARER,))
    @http_errors
    def staff_put_service(self, request: Request, code: str) -> Response:
        """An admin adds or edits a catalog service: PUT /staff/services/bache {definition}"""
        self.auth.require("admin")
        data = read_json(request)
        if data.setdefault("code", code) != code:
            raise ValidationError({"code": ["the body's code differs from the URL's"]})
        return json_response(service_json(self.intake.save_service(data)))
