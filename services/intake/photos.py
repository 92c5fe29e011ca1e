"""Intake's photo doors (a mixin of the portal, so every channel shares one store): upload tickets,
POST /api/v1/photos for the app, the chatbot's adapter and staff, GET /media/<name>, and the
sweep of uploads no report used. The store and the image pipeline are the chassis'
(shared/chassis/photos.py); who may upload how many is uploads.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from nameko.dependency_providers import Config
from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from shared.chassis.auth import WorkerAuth
from shared.chassis.http import error_response, http, json_response, request_id_of
from shared.chassis.openapi import BEARER, PHOTOS, PLAIN, UPLOAD_TICKET, api
from shared.chassis.photos import (
    PhotoRejected,
    Photos,
    PhotoStore,
    media_response,
    read_upload,
    upload_limit,
)
from shared.contracts.errors import WireError

from . import schemas
from .application import IntakeApplication
from .errors import http_errors
from .store import IntakeStore
from .uploads import UploadPolicy, UploadRefused, Uploads

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 3600
TICKET_HEADER = "X-Upload-Ticket"
STAFF_ROLES = ("operator", "supervisor", "crew", "admin")
REFUSED_CODES = {401: "unauthenticated", 403: "forbidden", 429: "too_many_requests"}


def refused_answer(refused: UploadRefused | PhotoRejected, request: Request) -> Response:
    """The wire's error, with the message on the `photo` field (Spanish / English)."""
    if isinstance(refused, PhotoRejected):
        code = "payload_too_large" if refused.reason == "too_large" else "invalid_input"
        answer = error_response(WireError(code, refused.english, {"photo": [str(refused)]}),
                                request_id_of(request))
    else:
        answer = error_response(WireError(REFUSED_CODES[refused.status], refused.english,
                                          {"photo": [str(refused)]}), request_id_of(request))
        if refused.retry_after:
            answer.headers["Retry-After"] = str(refused.retry_after)
    return answer


def prune_orphans(photos: PhotoStore, store: IntakeStore, older_than: timedelta) -> int:
    """Remove the photos uploaded longer ago than `older_than` that no report references (a
    citizen who uploaded and never sent the report, or someone filling the disk); how many."""
    removed = 0
    for name in store.orphan_photos(datetime.now(UTC) - older_than):
        photos.delete(name)
        store.forget_photo(name)
        removed += 1
    if removed:
        log.info("removed %d photos that no report references", removed)
    return removed


class PhotoEndpoints:
    """POST /api/v1/upload-tickets, POST /api/v1/photos and GET /media/<name>."""

    # IntakeService's dependencies, annotated and never assigned: nameko takes no provider here.
    intake: IntakeApplication
    auth: WorkerAuth

    # Typed as what a worker gets from them (the chatbot's door uses the same policy).
    photos: PhotoStore = Photos()
    uploads: UploadPolicy = Uploads()
    config = Config()

    @http("POST", "/api/v1/upload-tickets")
    @api(answers={201: schemas.UploadTicketSchema}, errors=(429,))
    @http_errors
    def api_upload_ticket(self, request: Request) -> Response:
        """POST /api/v1/upload-tickets (no body) -> 201 {"ticket": "eyJp…", "expires_at":
        "2026-03-01T18:00:00+00:00", "photos": 5}: send it in X-Upload-Ticket with each photo.
        At most UPLOAD_TICKETS_PER_HOUR (30) per client address: 429 with Retry-After."""
        try:
            ticket = self.uploads.issue(self.intake.store,
                                        address=self.uploads.client(request))
        except UploadRefused as refused:
            return refused_answer(refused, request)
        return json_response(ticket, 201)

    @http("POST", "/api/v1/photos", max_body=upload_limit)
    @api(upload=PHOTOS, form=schemas.PhotoFormSchema, answers={201: schemas.PhotoUrlSchema},
         auth=(UPLOAD_TICKET, BEARER), errors=(429,))
    @http_errors
    def api_upload_photo(self, request: Request) -> Response:
        """POST /api/v1/photos with a raw JPEG/PNG/WebP body (or multipart field `photo`) and
        `X-Upload-Ticket: <ticket>` (a citizen's app, the chatbot's adapter) or
        `Authorization: Bearer <token>` (operator, supervisor, crew, admin)
        -> 201 {"url": "http://localhost:8000/media/3f2a….jpg"}; reference it in `media_urls`.
        What is kept is the photo re-encoded: upright, at most PHOTO_MAX_SIDE pixels a side,
        without its metadata (EXIF, GPS). 401 without a valid ticket, 403 once the ticket has
        taken its photos, 429 (Retry-After) past the hourly quota, 400/413 for what is not a
        photo we keep."""
        store = self.photos
        try:
            if request.headers.get("Authorization"):
                principal = self.auth.require(*STAFF_ROLES)
                self.uploads.admit_staff(self.intake.store, principal.subject)
            else:
                self.uploads.admit_citizen(self.intake.store, request.headers.get(TICKET_HEADER),
                                           self.uploads.client(request))
            photo = store.prepare(read_upload(request, "photo", store.max_bytes))
        except (UploadRefused, PhotoRejected) as refused:
            return refused_answer(refused, request)
        try:
            url = store.keep(photo)
            self.intake.store.photo_uploaded(url.rpartition("/")[2])
        except Exception:  # the disk or the object store: the client may retry
            log.exception("the photo store failed")
            raise WireError("unavailable", "The photo could not be stored; try again.",
                            {"photo": ["No pudimos guardar la foto; intenta de nuevo. / The "
                                       "photo could not be stored; try again."]}) from None
        return json_response({"url": url}, 201, {"Location": url})

    @timer(interval=PRUNE_EVERY_SECONDS)
    def prune_orphan_photos(self) -> None:
        """Every replica sweeps (a delete is idempotent); PHOTO_ORPHAN_HOURS, 0 turns it off.
        Expired tickets and past quota windows go too."""
        self.intake.store.forget_uploads_before(datetime.now(UTC) - timedelta(hours=2))
        hours = float(self.config.get("PHOTO_ORPHAN_HOURS") or 0)
        if hours > 0:
            prune_orphans(self.photos, self.intake.store, timedelta(hours=hours))

    @http("GET", "/media/<string:name>")
    @api(answers={200: dict.fromkeys(PHOTOS), 404: PLAIN})
    def media_photo(self, request: Request, name: str) -> Response:
        """A photo kept in the local store, e.g. GET /media/3f2a….jpg (404 for any other name):
        its stored type, inline, with nosniff and a sandboxing Content-Security-Policy."""
        return media_response(self.photos, name)
