"""Open311 GeoReport v2 under /open311/v2/ (a mixin of IntakeService): check the caller, call the
application or tracking, render XML or JSON. Parsing and documents live in open311.py."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, request_id_of
from shared.chassis.metrics import ERROR_ANSWERS
from shared.chassis.openapi import API_KEY, JSON, XML, api
from shared.contracts.errors import RETRY_AFTER_SECONDS

from ..application import IntakeApplication, UnknownService
from ..errors import ERRORS
from . import documents as open311_docs
from . import format as open311
from . import schemas
from .format import Open311Error

log = logging.getLogger(__name__)
BASE = "/open311/v2"
Answer = tuple[str, Any, int]  # (XML root element, document, HTTP status)


def geo_api(**declared: Any) -> Callable[[Callable], Callable]:
    """`@api` for a GeoReport door: a path per format, errors in the spec's format (a wrong
    jurisdiction_id is a 404 on every door)."""
    return api(**{"query": schemas.GeoReportScopeSchema, "errors": (400, 404), **declared},
               formats={"json": JSON, "xml": XML},
               error_body=schemas.GeoReportErrorSchema(many=True))


@dataclass(frozen=True)
class Settings:
    """The jurisdiction we answer for, who may post to it, and what discovery says."""

    jurisdiction: str
    api_keys: Mapping[str, str]  # key -> client name
    timezone: tzinfo
    url: str
    contact: str
    key_service: str

    def check_jurisdiction(self, given: str | None) -> None:
        """jurisdiction_id is optional (we serve one); a different one was "not found"."""
        if given and given.strip() and given.strip() != self.jurisdiction:
            raise Open311Error(404, f"jurisdiction_id {given.strip()!r} was not found; "
                                    f"this endpoint serves {self.jurisdiction}")

    def client(self, api_key: str | None) -> str:
        """The client's name for a valid api_key, else a 403."""
        if not api_key:
            raise Open311Error(403, "api_key was not provided")
        for key, name in self.api_keys.items():
            if hmac.compare_digest(key.encode(), api_key.encode()):
                return name
        raise Open311Error(403, "api_key is invalid")


def parse_api_keys(text: str) -> dict[str, str]:
    """'name:key,name:key' -> {key: name}."""
    keys = {}
    for entry in (part.strip() for part in text.split(",")):
        name, _, key = entry.rpartition(":")
        if key:
            keys[key] = name or "client"
    return keys


class Open311Settings(DependencyProvider):
    """`self.open311` in an entrypoint: Settings read from configuration once."""

    def setup(self) -> None:
        config = self.container.config
        jurisdiction = str(config.get("OPEN311_JURISDICTION") or "queretaro.gob.mx")
        public_url = str(config.get("PUBLIC_URL") or "http://localhost:8000").rstrip("/")
        self.settings = Settings(
            jurisdiction=jurisdiction,
            api_keys=parse_api_keys(str(config.get("OPEN311_API_KEYS") or "")),
            timezone=ZoneInfo(str(config.get("TIMEZONE") or "America/Mexico_City")),
            url=public_url + BASE,
            contact=str(config.get("OPEN311_CONTACT") or
                        f"Atención ciudadana de {jurisdiction}: llame al 070."),
            key_service=str(config.get("OPEN311_KEY_SERVICE") or
                            f"Pida una api_key a la dirección de informática de {jurisdiction}."),
        )

    def get_dependency(self, worker_ctx: Any) -> Settings:
        return self.settings


def problem(exc: Exception, request_id: str = "-") -> tuple[int, list[dict[str, Any]]]:
    """(status, errors document) for anything an Open311 entrypoint raised, mapped by intake's
    error table as every door's errors are: tracking's codes keep their status, a dependency
    down is a 503, and only what nobody expected a 500 (the spec's "General service error")."""
    if isinstance(exc, Open311Error):
        return exc.status, exc.document()
    if isinstance(exc, UnknownService):
        return 404, Open311Error(404, f"service_code {exc.args[0]!r} was not found").document()
    wire = ERRORS.wire(exc)
    if wire is None:
        log.error("Open311 request failed (request %s)", request_id, exc_info=exc)
        error = Open311Error(500, "General service error: something failed on our side "
                                  f"(request id {request_id})")
    elif wire.code == "invalid_input":
        error = Open311Error(400, *open311.describe(wire.fields or wire.message))
    elif wire.status >= 500:
        log.warning("Open311 request answered %s (request %s): %r", wire.code, request_id, exc)
        error = Open311Error(wire.status, "the service request system is not answering; try "
                                          f"again in a moment (request id {request_id})")
    else:
        error = Open311Error(wire.status, wire.message)
    ERROR_ANSWERS.labels(wire.code if wire is not None else "internal").inc()
    return error.status, error.document()


def georeport(handler: Callable[..., Answer]) -> Callable[..., Response]:
    """Wrap an entrypoint that takes `fmt` from its URL: unknown formats are a 404, the
    jurisdiction is checked, and every error is answered in the spec's format."""

    @functools.wraps(handler)
    def wrapper(self: Any, request: Request, **params: str) -> Response:
        fmt = params.pop("fmt").lower()
        try:
            if fmt not in open311.FORMATS:
                fmt = "xml"  # the spec's required format, for the error itself
                raise Open311Error(404, "unknown format: ask for .xml or .json")
            open311.check_arguments(request.args)  # every door's arguments, as docs/input.md says
            self.open311.check_jurisdiction(request.values.get("jurisdiction_id"))
            root, document, status = handler(self, request, **params)
        except Exception as exc:
            status, document = problem(exc, request_id_of(request))
            root = "errors"
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return Response(open311_docs.render(fmt, root, document), status=status,
                        headers=headers, content_type=open311.FORMATS[fmt])

    return wrapper


class Open311Api:
    """GeoReport v2 for other systems and citizen apps: discovery, services, definitions, POST
    and GET requests, tokens, and the servicerequestupdates extension."""

    # IntakeService's dependencies, annotated and never assigned: nameko takes no provider here.
    intake: IntakeApplication

    open311 = Open311Settings()

    @http("GET", f"{BASE}/discovery.<string:fmt>")
    @geo_api(answers={200: schemas.GeoReportDiscoverySchema})
    @georeport
    def open311_discovery(self, request: Request) -> Answer:
        """GET /open311/v2/discovery.json -> {"changeset": ..., "endpoints": [{"url": ...}]}"""
        changeset = catalog_changeset(self.intake.store)
        return "discovery", open311_docs.discovery_document(self.open311, changeset), 200

    @http("GET", f"{BASE}/services.<string:fmt>")
    @geo_api(answers={200: schemas.GeoReportServiceSchema(many=True)})
    @georeport
    def open311_services(self, request: Request) -> Answer:
        """GET /open311/v2/services.xml -> <services><service><service_code>bache</...>"""
        return "services", [open311_docs.service_entry(d) for d in self.intake.catalog()], 200

    @http("GET", f"{BASE}/services/<string:code>.<string:fmt>")
    @geo_api(answers={200: schemas.GeoReportDefinitionSchema})
    @georeport
    def open311_service_definition(self, request: Request, code: str) -> Answer:
        """GET /open311/v2/services/bache.json -> {"service_code": "bache", "attributes": [...]}"""
        definition = self.intake.service(code)
        return "service_definition", open311_docs.definition_document(definition), 200

    @http("POST", f"{BASE}/requests.<string:fmt>")
    @geo_api(form=schemas.GeoReportFormSchema, auth=(API_KEY,), errors=(400, 403, 404),
             answers={200: schemas.GeoReportReceiptSchema(many=True)})
    @georeport
    def open311_post_request(self, request: Request) -> Answer:
        """POST /open311/v2/requests.json (form) api_key=…&service_code=bache&lat=20.59&
        long=-100.39&attribute[tamano]=grande&email=ana@example.com
        -> [{"service_request_id": "QRO-2026-000123", "token": "…", "service_notice": "…"}]"""
        form = request.form
        client = self.open311.client(form.get("api_key") or request.args.get("api_key"))
        code = open311.form_value(form, "service_code")
        if code is None:
            raise Open311Error(400, "service_code was not provided")
        definition = self.intake.service(code)
        receipt = self.intake.submit(open311.submission_from_form(form, definition))
        log.info("Open311 client %s opened %s", client, receipt["folio"])
        notice = open311_docs.service_notice(definition)
        return "service_requests", open311_docs.receipt_document(receipt, notice), 200

    @http("GET", f"{BASE}/requests.<string:fmt>")
    @geo_api(query=schemas.GeoReportRequestsQuerySchema,
             answers={200: schemas.GeoReportRequestSchema(many=True)})
    @georeport
    def open311_get_requests(self, request: Request) -> Answer:
        """GET /open311/v2/requests.json?service_code=bache&status=open&start_date=
        2026-01-01T00:00:00-06:00 -> [{"service_request_id": "QRO-2026-000123", ...}]"""
        filters = open311.request_filters(request.args, datetime.now(UTC))
        return "service_requests", self._requests(request, filters), 200

    @http("GET", f"{BASE}/requests/<string:request_id>.<string:fmt>")
    @geo_api(answers={200: schemas.GeoReportRequestSchema(many=True)})
    @georeport
    def open311_get_request(self, request: Request, request_id: str) -> Answer:
        """GET /open311/v2/requests/QRO-2026-000123.xml -> a list of one request"""
        found = []
        if "," not in request_id:
            found = self._requests(request, {"folio": request_id, "limit": 1})
        if not found:
            raise Open311Error(404, f"service_request_id {request_id!r} was not found")
        return "service_requests", found, 200

    @http("GET", f"{BASE}/tokens/<string:token>.<string:fmt>")
    @geo_api(answers={200: schemas.GeoReportTokenSchema(many=True)})
    @georeport
    def open311_token(self, request: Request, token: str) -> Answer:
        """GET /open311/v2/tokens/6f1c….json -> [{"service_request_id": "QRO-…", "token": …}]"""
        known, folio = self.intake.folio_for_token(token)
        if not known:
            raise Open311Error(404, f"token {token!r} was not found")
        return "service_requests", open311_docs.token_document(token, folio), 200

    @http("GET", f"{BASE}/servicerequestupdates.<string:fmt>")
    @geo_api(query=schemas.GeoReportUpdatesQuerySchema,
             answers={200: schemas.GeoReportUpdateSchema(many=True)})
    @georeport
    def open311_updates(self, request: Request) -> Answer:
        """GET /open311/v2/servicerequestupdates.xml?start_date=2026-03-01T00:00:00Z
        -> <service_request_updates><request_update><update_id>…"""
        filters, end = open311.update_filters(request.args, datetime.now(UTC))
        rows = self.intake.tracking.remote.call("open311_updates", filters)
        updates = open311_docs.updates_document(rows, self.open311.timezone, end)
        return "service_request_updates", updates, 200

    def _requests(self, request: Request, filters: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self.intake.tracking.remote.call("open311_requests", filters)
        services = self.intake.store.services()
        extensions = open311.wants_extensions(request.args)
        notices = {code: open311_docs.service_notice(d) for code, d in services.items()}
        return [open311_docs.request_document(row, self.open311.timezone,
                                              notices.get(row["service_code"]), extensions)
                for row in rows]


def catalog_changeset(store: Any) -> str:
    """When the catalog last changed (UTC, sortable), as discovery's changeset: clients refresh
    their cached services and definitions when it moves."""
    latest = store.catalog_changed_at()
    moment = datetime.fromisoformat(latest) if latest else datetime(2026, 1, 1, tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
