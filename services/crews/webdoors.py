"""The field app's doors (a mixin of CrewsService): the installable app under /app/ (static files,
its service worker, the settings it starts from) and, in development mode only, a demo sign-in
as a member of any crew.

The app signs in by itself: OpenID Connect's authorization code flow with PKCE, run in the
browser against the identity provider OIDC_ISSUER names (a public client, OIDC_CLIENT_ID); the
access token goes as a Bearer token to the field API, which verifies it as every door does
(JWT_ISSUER, JWT_JWKS_URL …). Its claims say who the member is (`roles: crew`, `crew_id`).
Settings are read from the configuration, else the environment (shared/chassis/auth.setting).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from marshmallow import Schema, ValidationError
from nameko.dependency_providers import Config
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response
from shared.chassis.auth import mint_token, setting
from shared.chassis.http import http, origins_of
from shared.chassis.openapi import HTML, JSON, api
from shared.chassis.secrets import development_mode
from shared.contracts.errors import WireError
from shared.contracts.events import STEP_LABELS
from shared.contracts.fields import Line, pattern
from shared.contracts.lifecycle import rule

from . import worklists
from .dependencies import Crews
from .schemas import CODE_PATTERN

WEBAPP = Path(__file__).with_name("webapp")
TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css",
         "webmanifest": "application/manifest+json", "png": "image/png",
         "svg": "image/svg+xml"}
APP_FILE = re.compile(r"^[a-z0-9][a-z0-9_\-]*\.(" + "|".join(TYPES) + ")$")  # fullmatch only
# The field's step (or a photo) -> the report event tracking records for it: the app moves a
# job on by the report's own lifecycle while its updates wait offline.
FIELD_EVENTS = {**worklists.FIELD_EVENTS, "photo": "photo_added"}
DEMO_TOKEN_SECONDS = 12 * 3600  # a working day
NOT_HERE = "the demo sign-in exists only in development mode"


class DemoSignInSchema(Schema):
    crew = Line(20, required=True, validate=CODE_PATTERN)
    member = Line(64, required=True, strip=True, min_length=1)


class AppNameSchema(Schema):
    name = Line(64, required=True, validate=pattern(
        APP_FILE.pattern, "a file of the app: lower case, e.g. app.js or icon-192.png"))


DEMO = DemoSignInSchema()


def lifecycle() -> dict[str, Any]:
    """Each field step's rule, as shared/contracts/lifecycle.py says: where it is allowed, and
    the step it leaves a job in."""
    steps = {}
    for step, event in FIELD_EVENTS.items():
        found = rule(event)
        steps[step] = {"allowed_in": list(found.allowed_in), "moves_to": found.moves_to,
                       "moves_from": list(found.moves_from)}
    return steps


def app_file(name: str) -> Response:
    """One of the app's files by a safe name; anything else is a 404. `no-cache`: the browser
    asks again each time (the service worker keeps the copy that works offline), so a new
    version reaches the phones as soon as it is deployed."""
    path = WEBAPP / name
    if not APP_FILE.fullmatch(name) or not path.is_file():
        raise WireError("not_found", f"the field app has no file {name!r}")
    return Response(path.read_bytes(), mimetype=TYPES[name.rsplit(".", 1)[1]],
                    headers={"Cache-Control": "no-cache"})


class FieldAppDoors:
    """/app/…: the crews' field app (a phone's installable web app), and its demo sign-in."""

    # CrewsService's dependencies, annotated and never assigned: nameko takes no provider here.
    crews: Crews
    config = Config()

    @http("GET", "/app/", html=True)
    @api(answers={200: HTML})
    def http_app(self, request: Request) -> Response:
        """The field app (Spanish, phone-sized): jobs, steps, photos, materials; works
        offline."""
        response = app_file("index.html")
        response.headers["Content-Security-Policy"] = self._app_policy()
        return response

    @http("GET", "/app/sw.js")
    @api(answers={200: {"text/javascript": None}})
    def http_app_worker(self, request: Request) -> Response:
        """The app's service worker: keeps the app's own files so that it opens offline."""
        response = app_file("sw.js")
        response.headers["Service-Worker-Allowed"] = "/app/"
        return response

    @http("GET", "/app/config.json")
    @api(answers={200: {JSON: None}})
    def http_app_config(self, request: Request) -> Response:
        """GET /app/config.json -> {"api_base": "", "oidc": {"issuer": "https://id.example.mx/
        realms/municipio", "client_id": "cuadrillas", "scope": "openid profile"}, "development":
        false, "demo_url": null, "tiles": null, "steps": {…}, "step_labels": {…}}"""
        issuer = self._setting("OIDC_ISSUER").rstrip("/")
        oidc = {"issuer": issuer, "client_id": self._setting("OIDC_CLIENT_ID"),
                "scope": self._setting("OIDC_SCOPE") or "openid profile"} if issuer else None
        tiles = self._setting("FIELD_APP_TILES_URL")
        development = development_mode()
        return json_response({
            "api_base": self._setting("FIELD_APP_API_BASE").rstrip("/"),
            "oidc": oidc, "development": development,
            "demo_url": "demo" if development else None,
            "tiles": {"url": tiles, "attribution": self._setting("FIELD_APP_TILES_ATTRIBUTION")}
            if tiles else None,
            "steps": lifecycle(), "step_labels": STEP_LABELS,
        }, headers={"Cache-Control": "no-cache"})

    @http("GET", "/app/<string:name>")
    @api(path=AppNameSchema, answers={200: {TYPES[kind]: None for kind in TYPES}})
    def http_app_file(self, request: Request, name: str) -> Response:
        """One of the app's files, e.g. GET /app/app.js, /app/manifest.webmanifest."""
        return app_file(name)

    @http("GET", "/app/demo", html=True)
    @api(answers={200: HTML}, errors=(404,))
    def http_demo(self, request: Request) -> Response:
        """Development mode only: every crew and its members, each a button that signs in as
        that member (404 anywhere else)."""
        if not development_mode():
            raise WireError("not_found", NOT_HERE)
        return Response(demo_page(self.crews.fresh_views().crews()), mimetype="text/html")

    @http("POST", "/app/demo", max_body=4 * 1024, html=True)
    @api(form=DemoSignInSchema, answers={303: None}, errors=(404,))
    def http_demo_sign_in(self, request: Request) -> Response:
        """Development mode only: crew=C-01&member=pedro -> 303 to the app, the member's token
        (role crew, its crew and department) in the URL's fragment, which no server sees."""
        if not development_mode():
            raise WireError("not_found", NOT_HERE)
        try:
            data = DEMO.load(request.form.to_dict())
        except ValidationError as invalid:  # the page shows the message: say which field
            problems = invalid.normalized_messages()
            raise WireError("invalid_input", "; ".join(
                f"{field}: {' '.join(map(str, words))}" for field, words in problems.items()),
                problems) from None
        crew = self.crews.fresh_views().crew(data["crew"])
        if crew is None:
            raise refused("crew", f"there is no crew {data['crew']}")
        if data["member"] not in {member["member_id"] for member in crew["members"]}:
            raise refused("member", f"{data['member']} is not a member of crew {crew['code']}")
        token = mint_token(data["member"], ("crew",), crew_id=crew["code"],
                           department=crew["department"], ttl_seconds=DEMO_TOKEN_SECONDS,
                           config=self.config)
        return Response(status=303, headers={"Location": f"./#access_token={quote(token)}",
                                             "Cache-Control": "no-store"})

    # ---- helpers -------------------------------------------------------------------------------

    def _setting(self, key: str) -> str:
        return str(setting(self.config, key) or "").strip()

    def _app_policy(self) -> str:
        """What the app itself reaches beyond its own files: the API and the identity provider
        (discovery, token), blob: previews of photos not yet sent, map tiles, job photos."""
        reach = origins_of(f"{self._setting('OIDC_ISSUER')},{self._setting('FIELD_APP_API_BASE')}")
        images = origins_of(f"{self._setting('FIELD_APP_TILES_URL')},"
                            f"{self._setting('TRUSTED_MEDIA_URLS')}")
        return app_policy(reach, images)


def app_policy(reach: list[str], images: list[str]) -> str:
    """The chassis' page policy (no inline code, no framing) opened for the app."""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            + " ".join(["img-src 'self' https: blob:", *images]) + "; "
            + " ".join(["connect-src 'self'", *reach]) + "; "
            "manifest-src 'self'; worker-src 'self'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")


def refused(field: str, message: str) -> WireError:
    return WireError("invalid_input", message, {field: [message]})


def demo_page(crews: list[dict[str, Any]]) -> str:
    """The demo sign-in page: a form per crew, a button per member."""
    forms = []
    for crew in crews:
        code = html.escape(crew["code"])
        buttons = "".join(
            f'<button type="submit" name="member" value="{html.escape(m["member_id"])}">'
            f'{html.escape(m["name"])}</button>' for m in crew["members"]
        ) or '<span class="ayuda">Sin integrantes</span>'
        forms.append(
            f'<form method="post" action="demo" id="cuadrilla-{code}" class="demo">'
            f'<h2>{code} · {html.escape(crew["name"])}</h2>'
            f'<p class="ayuda">{html.escape(crew["department"])}</p>'
            f'<input type="hidden" name="crew" value="{code}">{buttons}</form>')
    body = "".join(forms) or "<p>No hay cuadrillas registradas.</p>"
    return ('<!doctype html><html lang="es"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>Entrar como cuadrilla (demostración)</title>'
            '<link rel="stylesheet" href="style.css"></head><body class="demo-page">'
            "<h1>Entrar como integrante de una cuadrilla</h1>"
            '<p class="aviso">Solo en modo de desarrollo: sin contraseña.</p>'
            f"{body}</body></html>")
