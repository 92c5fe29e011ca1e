"""The bulletin's doors (a mixin of BulletinService): a category's tally over HTTP and RPC, and
the report events that keep it."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields
from werkzeug.wrappers import Request, Response

from shared.chassis.auth import WorkerAuth
from shared.chassis.consumer import cloud_event_handler
from shared.chassis.errortable import BASE
from shared.chassis.http import http, json_errors, json_response
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc
from shared.chassis.sqlstore import SqlStore, Tx
from shared.contracts.cloudevents import CloudEvent

from . import tally

ERRORS = BASE.extend({tally.NothingCounted: "not_found"})
http_errors = json_errors(ERRORS)
READERS = ("supervisor", "auditor")


class TallySchema(Schema):
    service_code = fields.String(required=True)
    opened = fields.Integer(required=True)
    closed = fields.Integer(required=True)


class BulletinDoors:
    """A category's tally for supervisors and auditors, kept from the report events."""

    # BulletinService's dependencies, annotated and never assigned: nameko takes no provider here.
    store: SqlStore
    auth: WorkerAuth

    @rpc(errors=ERRORS)
    def tally(self, service_code: str) -> dict[str, Any]:
        """`bulletin.tally("bache")` -> {"service_code": "bache", "opened": 12, "closed": 9}"""
        self.auth.require(*READERS)
        return tally.read(self.store, service_code)

    @http("GET", "/bulletin/<string:service_code>")
    @api(answers={200: TallySchema}, auth=(BEARER,))
    @http_errors
    def http_tally(self, request: Request, service_code: str) -> Response:
        """GET /bulletin/bache -> {"service_code": "bache", "opened": 12, "closed": 9}"""
        return json_response(self.tally(service_code))

    @cloud_event_handler("mx.expediente.report.opened", "mx.expediente.report.closed",
                         store="store")
    def handle_report_event(self, event: CloudEvent, tx: Tx) -> None:
        """Each event once, in the transaction that records it as processed."""
        tally.count(tx, event)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """GET /readyz (shared/chassis/health.py): ready while the store answers."""
        self.store.run("SELECT 1")
        return True, {"store": True}
