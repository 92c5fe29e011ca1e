"""Tracking's citizen pages (a mixin of TrackingService): the lookup form, a folio's status page
and their stylesheet (HTML, Spanish)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, static_file
from shared.chassis.openapi import HTML, api

from .. import schemas
from ..read.pages import render_lookup, render_status
from .reads import ReportReads

STATIC = Path(__file__).parents[1] / "read" / "static"


class StatusPages(ReportReads):
    """/ (look a folio up), /seguimiento/<folio> (its status) and /static/<name>."""

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
