"""Tracking's RPC API (a mixin of TrackingService): commands and queries by nameko RPC."""

from __future__ import annotations

from typing import Any

from shared.chassis.rpc import rpc

from .. import access, schemas
from ..errors import ERRORS
from ..write import commands
from .reads import ReportReads

OPEN_REPORT = schemas.OpenReportSchema()
CITIZEN_FEEDBACK = schemas.CitizenFeedbackSchema()
SEARCH = schemas.SearchSchema()
REPORT_EVENTS = schemas.ReportEventsSchema()
OPEN311_REQUESTS = schemas.Open311RequestsSchema()
OPEN311_UPDATES = schemas.Open311UpdatesSchema()


class ReportsRpc(ReportReads):
    """`tracking.<method>` for the other services and the CLI: open a report, run a command,
    the citizen's feedback, and the views (the citizen's, the staff's, Open311's, the events)."""

    # ---- commands ------------------------------------------------------------------------------

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

    # ---- queries -------------------------------------------------------------------------------

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
