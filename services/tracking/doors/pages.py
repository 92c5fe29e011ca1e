"""Tracking's citizen pages (a mixin of TrackingService): the lookup form, a folio's status page
and their stylesheet (HTML, Spanish)."""

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
    """/ (look a folio up), /seguimiento/<folio> (its status) and /static/<name>."""

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
    @api(answers={200: {"text/css": None}})
    def http_static(self, request: Request, name: str) -> Response:
        """The pages' stylesheet, e.g. GET /static/status.css."""
        return static_file(STATIC, name)

    @http("GET", "/seguimiento/<string:folio>", html=True)
    @api(query=schemas.TokenQuerySchema, answers={200: HTML, 403: HTML, 404: HTML})
    def http_status_page(self, request: Request, folio: str) -> Response:
        """The citizen's status page (HTML, Spanish), the one every channel links to; the private
        link adds `?token=<access token>` and shows what only the citizen may read."""
        token = request.args.get("token") or None
        follow = str(self.config.get("PORTAL_URL") or "").rstrip("/")
        follow_url = f"{follow}/seguir/{quote(folio, '')}" if follow else None
        try:
            view = self._view(folio, token, staff=False)
        except PermissionError:
            page = render_status(folio, None, refused=True)
            return Response(page, status=403, mimetype="text/html")
        except ReportNotFound:
            view = None
        page = render_status(folio, view, private=token is not None, follow_url=follow_url)
        return Response(page, status=200 if view else 404, mimetype="text/html")
