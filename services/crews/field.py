"""The field doors (a mixin of CrewsService): a crew member's steps from the street, one at a
time or a phone's queue of offline updates at once, forwarded to tracking, the report's only
owner, with the device's own key (`step_id`) and time (`occurred_at`).

Tracking decides: the step in order (409 with the reason), the assigned crew (403), a repeated
`step_id` recorded once (the repeat answers the report as it stands). The caller's own token
goes with each step, so tracking records who did it and from where: a crew member is `field`,
a supervisor recording a step for a crew is `supervisor` (the step's origin, counted here).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from prometheus_client import Counter, Histogram
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response, read_json
from shared.chassis.auth import Principal, WorkerAuth
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpcclient import RemoteService
from shared.contracts.fields import Line, QueryDateTime, RecentDateTime, Text, finite, one_of
from shared.contracts.views import ReportStateSchema

from . import worklists
from .application import CrewNotFound, MaterialNotFound
from .dependencies import Crews
from .domainmodel import Material, NoPriceYet
from .errors import ERRORS, http_errors
from .schemas import AMOUNT, OCCURRED_AT

log = logging.getLogger(__name__)

# The field's name for a step -> tracking's command.
COMMANDS = {step: command for step, (command, _event) in worklists.FIELD_STEPS.items()}
MAX_BATCH = 200

SYNCED = Counter("expediente_offline_updates_synced_total",
                 "Updates a device queued offline and synced in a batch", ["outcome"])
SYNC_DELAY = Histogram("expediente_offline_sync_delay_seconds",
                       "From when a step happened on the device to when it synced",
                       buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400))


class PlaceSchema(Schema):
    lat = finite(required=True, validate=validate.Range(-90, 90))
    long = finite(required=True, validate=validate.Range(-180, 180))


class ItemSchema(Schema):
    code = Line(20, required=True, min_length=1)  # the materials catalog's code
    quantity = Line(20, required=True, validate=AMOUNT)  # a decimal string: "0.5" (m3)


class DeviceStepSchema(Schema):
    """What every update from a device carries (a step, a photo): its key and its time."""

    step_id = Line(64, required=True, min_length=8)  # the device's key for this step (a UUID)
    occurred_at = RecentDateTime(OCCURRED_AT, required=True)  # the device's clock


class FieldStepSchema(DeviceStepSchema):
    step = one_of(COMMANDS, required=True)
    position = fields.Nested(PlaceSchema, load_default=None)  # en route, arrived: where it is
    eta = QueryDateTime(load_default=None)  # en route: when the crew expects to arrive
    notes = Text(4000, load_default="")  # work completed: what was done
    items = fields.List(fields.Nested(ItemSchema), load_default=None,  # materials: what was used
                        validate=validate.Length(1, 50))

    @validates_schema
    def items_go_with_materials(self, data: dict[str, Any], **_: Any) -> None:
        if (data["step"] == "materials") != (data.get("items") is not None):
            raise ValidationError({"items": [
                "the materials step lists its items; no other step has any"]})

    @validates_schema
    def eta_goes_with_en_route(self, data: dict[str, Any], **_: Any) -> None:
        # Tracking judges the time itself (after occurred_at, within a day of it).
        if data.get("eta") is not None and data["step"] != "en_route":
            raise ValidationError({"eta": [
                "only the en_route step says when the crew expects to arrive"]})


class QueuedStepSchema(FieldStepSchema):
    folio = Line(32, required=True, min_length=1)


class BatchSchema(Schema):
    updates = fields.List(fields.Nested(QueuedStepSchema), required=True,
                          validate=validate.Length(1, MAX_BATCH))


class FieldAnswer(ReportStateSchema):
    origin = fields.String(required=True, validate=validate.OneOf(("field", "supervisor")))


class SyncedItem(Schema):
    folio = fields.String(required=True)
    step_id = fields.String(required=True)
    status = fields.Integer(required=True)
    report = fields.Nested(FieldAnswer, allow_none=True)
    error = fields.Dict(allow_none=True)


class SyncAnswer(Schema):
    results = fields.List(fields.Nested(SyncedItem), required=True)


STEP = FieldStepSchema()
BATCH = BatchSchema()


def origin_of(principal: Principal) -> str:
    """`field` for a crew member's own step; `supervisor` when a supervisor (or admin) records
    it for a crew."""
    return "field" if "crew" in principal.roles and principal.crew_id else "supervisor"


def forward(tracking: RemoteService, principal: Principal, command: str, folio: str,
            payload: dict[str, Any], request: Request) -> dict[str, Any]:
    """A field step to tracking as `command`, on behalf of the caller (their token): where the
    report stands, and the step's origin. (Steps are counted once tracking recorded them: the
    work lists' consumer counts `expediente_field_steps_total`.)"""
    report: dict[str, Any] = tracking.call("run_command", command, folio, payload,
                                           on_behalf_of=request.headers.get("Authorization"))
    return {**report, "origin": origin_of(principal)}


class FieldDoors:
    """/field/…: the crew's steps from the street (the field app's API)."""

    # CrewsService's dependencies, annotated and never assigned: nameko takes no provider here.
    crews: Crews
    auth: WorkerAuth
    tracking: RemoteService

    @http("POST", "/field/reports/<string:folio>/steps", max_body=8 * 1024)
    @api(body=STEP, answers={200: FieldAnswer}, auth=(BEARER,), errors=(409,))
    @http_errors
    def http_field_step(self, request: Request, folio: str) -> Response:
        """POST /field/reports/QRO-2026-000123/steps {"step": "arrived", "step_id": "5f0c…",
        "occurred_at": "2026-12-05T10:42:00-06:00", "position": {"lat": 20.59, "long": -100.39}}
        -> where the report stands, and the step's origin. En route, the crew may say when it
        expects to arrive: {"step": "en_route", …, "eta": "2026-12-05T11:15:00-06:00"}"""
        principal = self.auth.require("crew", "supervisor")
        data = STEP.load(read_json(request))
        return json_response(self._record(principal, folio, data, request, {}))

    @http("POST", "/field/sync", max_body=512 * 1024)
    @api(body=BATCH, answers={200: SyncAnswer}, auth=(BEARER,))
    @http_errors
    def http_sync(self, request: Request) -> Response:
        """POST /field/sync {"updates": [{"folio": …, "step": …, "step_id": …, "occurred_at": …},
        …]}: a phone's queue of offline updates, applied in the order they happened on the
        device, each once (a batch sent again answers as the first did) -> {"results": [one per
        update, in that order: its status and the report, or its error]}"""
        principal = self.auth.require("crew", "supervisor")
        updates = sorted(BATCH.load(read_json(request))["updates"],
                         key=lambda update: update["occurred_at"])
        results = []
        now = self.crews.now()
        loaded: dict[str, Material] = {}  # the catalog entries this queue priced
        for update in updates:
            item = {"folio": update["folio"], "step_id": update["step_id"]}
            try:
                report = self._record(principal, update["folio"], update, request, loaded)
            except Exception as exc:
                error = ERRORS.wire(exc)
                if error is None:
                    raise
                SYNCED.labels("refused").inc()
                results.append({**item, "status": error.status, "report": None,
                                "error": {"code": error.code, "message": error.message}})
                continue
            SYNCED.labels("applied").inc()
            SYNC_DELAY.observe(max(0.0, (now - update["occurred_at"]).total_seconds()))
            results.append({**item, "status": 200, "report": report, "error": None})
        return json_response({"results": results})

    def _record(self, principal: Principal, folio: str, data: dict[str, Any],
                request: Request, loaded: dict[str, Material]) -> dict[str, Any]:
        """One step to tracking with the caller's token; the crew's position kept here too."""
        occurred_at: datetime = data["occurred_at"]
        payload: dict[str, Any] = {"step_id": data["step_id"],
                                   "occurred_at": occurred_at.isoformat()}
        if data.get("eta") is not None:
            payload["eta"] = data["eta"].isoformat()
        if data["step"] == "work_completed":
            payload["notes"] = data["notes"]
        if data["step"] == "materials":
            payload["items"] = self._priced(data["items"], occurred_at, loaded)
        report = forward(self.tracking, principal, COMMANDS[data["step"]], folio,
                         payload, request)
        place = data.get("position")
        if place and report.get("crew_id"):
            try:
                self.crews.app.report_position(report["crew_id"], place["lat"], place["long"],
                                               occurred_at, by=principal.subject)
            except CrewNotFound:  # a crew tracking knows and this catalog does not (yet)
                log.warning("field step on %s: crew %s is not in crews; position not kept",
                            folio, report["crew_id"])
        return report

    def _priced(self, items: list[dict[str, Any]], moment: datetime,
                loaded: dict[str, Material]) -> list[dict[str, Any]]:
        """Each entry with the catalog's unit, description and the unit cost in force at the
        moment it was logged (what billing costs the repair from); an unknown code is a 400."""
        priced, problems = [], {}
        for number, item in enumerate(items):
            try:
                cost = self.crews.app.cost_of(item["code"], item["quantity"], moment, loaded)
            except (MaterialNotFound, NoPriceYet) as missing:
                problems[number] = {"code": [str(missing)]}
                continue
            priced.append({"code": cost["code"], "quantity": float(cost["quantity"]),
                           "unit": cost["unit"], "description": cost["description"],
                           "unit_cost": cost["unit_cost"], "cost": cost["cost"]})
        if problems:
            raise ValidationError({"items": problems})
        return priced


