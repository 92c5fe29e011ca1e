"""Tracking's citizen pages (a mixin of TrackingService): the lookup form, a folio's status page
(live when NOTIFICATIONS_URL is set), their stylesheet and script, and the page's service worker
(HTML, Spanish)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from nameko.dependency_providers import Config
from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, static_file
from shared.chassis.openapi import HTML, api

from .. import schemas
from ..read.pages import render_lookup, render_status
from ..write.application import ReportNotFound
from .reads import ReportReads

STATIC = Path(__file__).parents[1] / "read" / "static"


class StatusPages(ReportReads):
    """/ (look a folio up), /seguimiento/<folio> (its status), /static/<name> and /sw.js."""

    config = Config()

    @http("GET", "/", html=True)
    @api(query=schemas.LookupQuerySchema, answers={200: HTML, 303: None})
    def http_home(self, request: Request) -> Response:
        """The lookup form; GET /?folio=QRO-2026-000123 (the form sent) goes to its page."""
        folio = (request.args.get("folio") or "").strip()
        if folio:
            return Response(status=303, headers={"Location": f"/seguimiento/{quote(folio, '')}"})
        return Response(render_lookup(None), mimetype="text/html")

    @http("GET", "/static/<string:name>")
    @api(answers={200: {"text/css": None, "text/javascript": None}})
    def http_static(self, request: Request, name: str) -> Response:
        """The pages' stylesheet and script, e.g. GET /static/status.css, /static/live.js."""
        return static_file(STATIC, name)

    @http("GET", "/sw.js")
    @api(answers={200: {"text/javascript": None}})
    def http_service_worker(self, request: Request) -> Response:
        """The status page's service worker ("Avísame"): shows each step pushed to this browser
        and opens the report's page when the citizen taps it. At the root: its scope is `/`."""
        response = static_file(STATIC, "sw.js")
        response.headers["Cache-Control"] = "no-cache"  # a new version reaches browsers at once
        return response

    @http("GET", "/seguimiento/<string:folio>", html=True)
    @api(query=schemas.TokenQuerySchema, answers={200: HTML, 403: HTML, 404: HTML})
    def http_status_page(self, request: Request, folio: str) -> Response:
        """The citizen's status page (HTML, Spanish), the one every channel links to; the private
        link adds `?token=<access token>` and shows what only the citizen may read. With
        NOTIFICATIONS_URL its timeline follows each step as it happens (static/live.js)."""
        token = request.args.get("token") or None
        follow = str(self.config.get("PORTAL_URL") or "").rstrip("/")
        follow_url = f"{follow}/seguir/{quote(folio, '')}" if follow else None
        live_url = str(self.config.get("NOTIFICATIONS_URL") or "").rstrip("/") or None
        version = None
        try:
            # Read before the view: the page never claims a version it does not show (a step
            # that lands between the two reads is told again by the stream; nothing is lost).
            version = self._version(folio) if live_url else None
            view = self._view(folio, token, staff=False)
        except PermissionError:
            page = render_status(folio, None, refused=True)
            return Response(page, status=403, mimetype="text/html")
        except ReportNotFound:
            view = None
        page = render_status(folio, view, private=token is not None, follow_url=follow_url,
                             live_url=live_url if version is not None else None,
                             version=version)
        return Response(page, status=200 if view else 404, mimetype="text/html")

    def _version(self, folio: str) -> int | None:
        """The report's stream version as the views hold it (the citizen's views omit it)."""
        staff = self._caught_up().staff_view(folio)
        return None if staff is None else int(staff["version"])
