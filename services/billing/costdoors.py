"""The repair-cost doors (a mixin of BillingService): what a report's repair cost and the totals
per department, category and crew; and the consumer that keeps them from tracking's events.

The consumer is the chassis' ordered one: each report's events applied once, in stream-version
order, a gap filled by asking tracking for the report's events. Reads answer what the repair
costs hold; a department in the caller's token is its scope (docs/access.md, rule 1).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_errors, json_response
from shared.chassis.auth import Forbidden, Principal, WorkerAuth
from shared.chassis.consumer import cloud_event_handler
from shared.chassis.errortable import BASE
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc
from shared.chassis.rpcclient import RemoteService
from shared.chassis.sqlstore import SqlStore, Tx
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.errors import WireError
from shared.contracts.events import TYPE_PREFIX
from shared.contracts.fields import Line, QueryDateTime, one_of

from . import repaircosts
from .money import ZERO

CONSUMER_NAME = "billing.consume_report_event"  # the consumer's name: its queue and positions
COST_READERS = ("supervisor", "operator", "auditor", "billing_clerk")  # and admin


def not_costed(exc: repaircosts.RepairNotCosted) -> WireError:
    return WireError("not_found", str(exc), {"folio": [str(exc)]})


COST_ERRORS = BASE.extend({repaircosts.RepairNotCosted: not_costed})
cost_http_errors = json_errors(COST_ERRORS)


# ---- what comes in -----------------------------------------------------------------------------


class FolioPath(Schema):
    folio = Line(32, required=True, min_length=1)


class TotalsQuery(Schema):
    by = one_of(repaircosts.BY, required=True)
    since = QueryDateTime(load_default=None)  # materials logged from then on…
    until = QueryDateTime(load_default=None)  # …and before then
    department = Line(64, load_default=None)

    @validates_schema
    def window(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("must be later than since", "until")


# ---- what goes out -----------------------------------------------------------------------------


class Pesos(fields.String):
    """An exact amount in pesos and centavos, as text (never a JSON number: no float)."""

    openapi_schema = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$",
                      "examples": ["925.00"]}


class Quantity(fields.String):
    """A quantity as the crew logged it, exactly, as text."""

    openapi_schema = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$", "examples": ["0.5"]}


class CostLine(Schema):
    code = fields.String(required=True)
    description = fields.String(allow_none=True)
    unit = fields.String(allow_none=True)
    quantity = Quantity(required=True)
    unit_cost = Pesos(allow_none=True)  # as crews' catalog priced it when it was logged
    cost = Pesos(allow_none=True)  # None: crews could not price it
    crew_id = fields.String(allow_none=True)  # who it is charged to
    logged_at = fields.String(required=True)
    version = fields.Integer(required=True)  # of the report's materials_logged event


class RepairCostAnswer(Schema):
    folio = fields.String(required=True)
    department = fields.String(required=True)
    service_code = fields.String(required=True)
    crew_id = fields.String(allow_none=True)  # the crew assigned now
    total = Pesos(required=True)
    currency = fields.String(required=True)
    unpriced = fields.Integer(required=True)  # lines without a price, left out of the total
    lines = fields.List(fields.Nested(CostLine), required=True)


class CostTotal(Schema):
    key = fields.String(allow_none=True)  # a department, a service code or a crew id
    reports = fields.Integer(required=True)
    total = Pesos(required=True)


class CostTotalsAnswer(Schema):
    by = fields.String(required=True)
    since = fields.DateTime(allow_none=True)
    until = fields.DateTime(allow_none=True)
    department = fields.String(allow_none=True)
    currency = fields.String(required=True)
    total = Pesos(required=True)
    totals = fields.List(fields.Nested(CostTotal), required=True)


FOLIO_PATH, TOTALS_QUERY = FolioPath(), TotalsQuery()
REPAIR_COST, COST_TOTALS = RepairCostAnswer(), CostTotalsAnswer()


def scope_of(principal: Principal, asked: str | None) -> str | None:
    """The department a reader sees: the one its token names (another is refused); any, or
    the one asked, for an admin or a city-wide token."""
    if "admin" in principal.roles or not principal.department:
        return asked
    if asked is not None and asked != principal.department:
        raise Forbidden(f"you see the repair costs of {principal.department}, not {asked}")
    return principal.department


class RepairCostDoors:
    """/costs, /costs/reports/{folio}, their RPC twins; and the report events' consumer."""

    # BillingService's dependencies, annotated and never assigned: nameko takes no provider here.
    views: SqlStore
    auth: WorkerAuth
    tracking: RemoteService

    @cloud_event_handler(f"{TYPE_PREFIX}*", store="views", catch_up="fetch_report_events",
                         batch=20)
    def consume_report_event(self, events: list[CloudEvent], tx: Tx) -> None:
        for event in events:
            repaircosts.apply(tx, event)

    def fetch_report_events(self, folio: str, after_version: int) -> list[dict[str, Any]]:
        """A report's events after a version, from tracking (the consumer found a gap)."""
        events: list[dict[str, Any]] = self.tracking.call("report_events", folio, after_version)
        return events

    # ---- reads -------------------------------------------------------------------------------

    def _repair_cost(self, folio: str) -> dict[str, Any]:
        principal = self.auth.require(*COST_READERS)
        folio = FOLIO_PATH.load({"folio": folio})["folio"]
        cost = repaircosts.report_cost(self.views, folio)
        scope_of(principal, cost["department"])
        answer: dict[str, Any] = REPAIR_COST.dump(cost)
        return answer

    def _repair_costs(self, query: dict[str, Any]) -> dict[str, Any]:
        principal = self.auth.require(*COST_READERS)
        asked = TOTALS_QUERY.load(query)
        department = scope_of(principal, asked["department"])
        found = repaircosts.totals(self.views, asked["by"], since=asked["since"],
                                   until=asked["until"], department=department)
        answer: dict[str, Any] = COST_TOTALS.dump({
            **asked, "department": department, "currency": repaircosts.CURRENCY,
            "total": sum((row["total"] for row in found), ZERO),
            "totals": found})
        return answer

    @rpc(errors=COST_ERRORS)
    def repair_cost(self, folio: str) -> dict[str, Any]:
        """`repair_cost("QRO-2026-000123")` -> the report's cost, as GET /costs/reports/{folio}
        answers it."""
        return self._repair_cost(folio)

    @rpc(errors=COST_ERRORS)
    def repair_costs(self, by: str, since: str | None = None, until: str | None = None,
                     department: str | None = None) -> dict[str, Any]:
        """`repair_costs("crew", "2026-03-01T00:00:00-06:00")` -> the totals, as GET /costs
        answers them (dates as ISO 8601 text with their time zone)."""
        given = {"by": by, "since": since, "until": until, "department": department}
        return self._repair_costs({key: value for key, value in given.items()
                                   if value is not None})

    @http("GET", "/costs/reports/<string:folio>")
    @api(path=FolioPath, answers={200: RepairCostAnswer}, auth=(BEARER,))
    @cost_http_errors
    def http_repair_cost(self, request: Request, folio: str) -> Response:
        """GET /costs/reports/QRO-2026-000123 -> {"folio": "QRO-2026-000123", "department":
        "obras_publicas", "service_code": "bache", "crew_id": "C-01", "total": "925.00",
        "currency": "MXN", "unpriced": 0, "lines": [{"code": "MEZ-ASF", "quantity": "0.5",
        "unit": "m3", "unit_cost": "1850.00", "cost": "925.00", "crew_id": "C-01", ...}]}"""
        return json_response(self._repair_cost(folio))

    @http("GET", "/costs")
    @api(query=TotalsQuery, answers={200: CostTotalsAnswer}, auth=(BEARER,))
    @cost_http_errors
    def http_repair_costs(self, request: Request) -> Response:
        """GET /costs?by=crew&since=2026-03-01T00:00:00-06:00 -> {"by": "crew", "currency":
        "MXN", "total": "18250.40", "totals": [{"key": "C-01", "reports": 12, "total":
        "18250.40"}], ...}: largest first; `by` is department, service_code or crew"""
        return json_response(self._repair_costs(request.args.to_dict()))

