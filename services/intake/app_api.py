"""The mobile app's JSON API (a mixin of IntakeService: validate, call the application, dump)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError
from nameko.dependency_providers import Config
from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, json_response, read_json
from shared.chassis.openapi import ACCESS_TOKEN, ANYONE, api
from shared.contracts.views import CitizenViewSchema

from . import schemas
from .application import IntakeApplication, Submission
from .errors import NotFound, http_errors

REPORT = schemas.ReportSchema()
FOLLOW = schemas.FollowSchema()
NEARBY = schemas.NearbySchema()


def submission(data: dict[str, Any], channel: str, key: str | None) -> Submission:
    return Submission(channel=channel, service_code=data["service_code"],
                      description=data["description"].strip(),
                      location=schemas.clean_location(data["location"]),
                      answers=data["answers"], media_urls=data["media_urls"],
                      contact=data["contact"], idempotency_key=key)


def idempotency_key(request: Request, required: bool) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        if required:
            raise ValidationError({"Idempotency-Key": [
                "send an Idempotency-Key header (a UUID per report) so a retry is safe"]})
        return None
    try:
        return schemas.IDEMPOTENCY_KEY(key)
    except ValidationError as error:
        raise ValidationError({"Idempotency-Key": error.messages}) from None


def service_json(definition: Any) -> dict[str, Any]:
    data = definition.as_dict()
    data.pop("active", None)
    return data


class AppApi:
    """/api/v1/…: the citizen's mobile app (and any JSON client)."""

    # IntakeService's dependencies, annotated and never assigned: nameko takes no provider here.
    intake: IntakeApplication

    config = Config()

    @timer(interval=3600)
    def forget_old_access_tokens(self) -> None:
        """Answers kept for idempotent replays lose the citizen's access token after
        REPLAY_WINDOW_HOURS (24): a replay later than that answers the same folio without it."""
        hours = float(self.config.get("REPLAY_WINDOW_HOURS") or 24)
        cutoff = datetime.now(UTC) - timedelta(hours=hours)
        while self.intake.store.forget_access_tokens(cutoff) == 500:
            pass

    @timer(interval=3600)
    def purge_unfinished(self) -> None:
        """What a citizen started and never finished is not kept: chatbot conversations untouched
        for CHATBOT_RETENTION_HOURS (48) and submissions whose report was never opened after
        UNFINISHED_SUBMISSION_HOURS (48); 0 keeps them. Every replica sweeps, in batches."""
        store = self.intake.store
        for setting, forget in (("CHATBOT_RETENTION_HOURS", store.forget_conversations),
                                ("UNFINISHED_SUBMISSION_HOURS", store.forget_unfinished)):
            hours = float(self.config.get(setting) or 0)
            if hours > 0:
                cutoff = datetime.now(UTC) - timedelta(hours=hours)
                while forget(cutoff) == 500:
                    pass

    @http("GET", "/api/v1/services")
    @api(answers={200: schemas.ServicesSchema})
    @http_errors
    def api_services(self, request: Request) -> Response:
        """GET /api/v1/services -> {"services": [{"code": "bache", "name": "Bache", ...}]}"""
        return json_response({"services": [service_json(s) for s in self.intake.catalog()]})

    @http("GET", "/api/v1/services/<string:code>")
    @api(answers={200: schemas.CatalogServiceSchema})
    @http_errors
    def api_service(self, request: Request, code: str) -> Response:
        """GET /api/v1/services/bache -> {"code": "bache", "name": "Bache", "questions": [...]}"""
        definition = self.intake.store.services().get(code)
        if definition is None or not definition.active:
            raise NotFound(f"no service has code {code!r}")
        return json_response(service_json(definition))

    @http("POST", "/api/v1/reports")
    @api(body=REPORT, headers=schemas.AppKeySchema, answers={201: schemas.ReceiptSchema},
         errors=(409, 422))
    @http_errors
    def api_report(self, request: Request) -> Response:
        """POST /api/v1/reports with `Idempotency-Key: <uuid>` and a ReportSchema body
        -> 201 {"folio": "QRO-2026-000123", "access_token": "...", "status_url": "..."}"""
        key = idempotency_key(request, required=True)
        data = REPORT.load(read_json(request))
        receipt = self.intake.submit(submission(data, "app", f"app:{key}"))
        return json_response(receipt, 201)

    @http("GET", "/api/v1/duplicates")
    @api(query=NEARBY, answers={200: schemas.NearbyReportsSchema})
    @http_errors
    def api_duplicates(self, request: Request) -> Response:
        """GET /api/v1/duplicates?service_code=bache&lat=20.59&long=-100.39 -> open reports of
        the same service nearby, which the citizen may follow instead of reporting again."""
        query = NEARBY.load(request.args.to_dict())
        return json_response({"reports": self.intake.possible_duplicates(**query)})

    @http("POST", "/api/v1/reports/<string:folio>/follow")
    @api(body=FOLLOW, answers={202: schemas.FollowingSchema})
    @http_errors
    def api_follow(self, request: Request, folio: str) -> Response:
        """POST /api/v1/reports/QRO-2026-000123/follow {"contact": {"email": "..."}} -> 202"""
        data = FOLLOW.load(read_json(request))
        if self.intake.tracking.public_report(folio) is None:
            raise NotFound(f"no report has folio {folio}")
        self.intake.follow(folio, data["contact"], "app")
        return json_response({"folio": folio, "subscribed": True}, 202)

    @http("GET", "/api/v1/reports/<string:folio>")
    @api(answers={200: CitizenViewSchema}, auth=(ANYONE, ACCESS_TOKEN), errors=(403,))
    @http_errors
    def api_get_report(self, request: Request, folio: str) -> Response:
        """GET /api/v1/reports/QRO-2026-000123 (X-Access-Token: … for the private view)"""
        token = request.headers.get("X-Access-Token") or None
        view = self.intake.tracking.public_report(folio, token)
        if view is None:
            raise NotFound(f"no report has folio {folio}")
        return json_response(view)
