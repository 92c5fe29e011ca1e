"""The field's photo door (a mixin of CrewsService): a crew's photo of its work, before, during
or after, kept by crews and added to the report through tracking like any other field step.

The photo goes through the chassis' image pipeline (re-encoded, without its metadata) before
anything is written, and is kept under a name made from the step (folio and `step_id`): a phone
that sends the same step again after a lost answer finds it kept and stores no second copy, and
tracking, which records a `step_id` once, answers as it did the first time. A photo that tracking
refuses (another crew's report, a closed one) is deleted, unless an earlier try had kept it.
"""

from __future__ import annotations

import logging

from marshmallow import fields
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import json_response
from shared.chassis.auth import WorkerAuth
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, PHOTOS, PLAIN, api
from shared.chassis.photos import (
    KINDS,
    CleanPhoto,
    PhotoRejected,
    PhotoStore,
    media_response,
    new_name,
    read_upload,
    upload_limit,
)
from shared.chassis.rpcclient import RemoteService
from shared.contracts.errors import WireError
from shared.contracts.fields import Line, one_of

from .errors import http_errors
from .field import DeviceStepSchema, FieldAnswer, forward

log = logging.getLogger(__name__)

STAGES = ("before", "during", "after")  # a citizen's own photos are stage `report`, not ours
MULTIPART = "multipart/form-data"


class FieldPhotoSchema(DeviceStepSchema):
    """The form's text fields; the photo itself is the file `photo`."""

    caption = Line(200, required=True, strip=True, min_length=1)  # what the photo shows
    stage = one_of(STAGES, required=True)


class FieldPhotoForm(FieldPhotoSchema):
    """The whole form, as GET /openapi.json shows it."""

    photo = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class FieldPhotoAnswer(FieldAnswer):
    url = fields.String(required=True)  # where the photo is served (what tracking recorded)


PHOTO_STEP = FieldPhotoSchema()


def step_photo_name(folio: str, step_id: str, kind: str) -> str:
    """The name a step's photo is kept under: the same step always names the same file."""
    return new_name(kind, "", seed=f"field-photo:{folio}:{step_id}")


def rejected(refused: PhotoRejected) -> WireError:
    """Not a photo we keep: 413 when too large, else 400, the message on the `photo` field."""
    code = "payload_too_large" if refused.reason == "too_large" else "invalid_input"
    return WireError(code, refused.english, {"photo": [str(refused)]})


class FieldPhotoDoors:
    """POST /field/reports/{folio}/photos: a crew's photo from the street; GET /media/<name>."""

    # CrewsService's dependencies, annotated and never assigned: nameko takes no provider here.
    auth: WorkerAuth
    photos: PhotoStore
    tracking: RemoteService

    @http("POST", "/field/reports/<string:folio>/photos", max_body=upload_limit)
    @api(form=FieldPhotoForm, answers={200: FieldPhotoAnswer}, auth=(BEARER,),
         errors=(409, 415))
    @http_errors
    def http_field_photo(self, request: Request, folio: str) -> Response:
        """POST /field/reports/QRO-2026-000123/photos, multipart/form-data: `photo` (a JPEG,
        PNG or WebP file), `caption` ("Bache antes de rellenar"), `stage` (before, during or
        after), `step_id` ("5f0c…") and `occurred_at` ("2026-12-05T10:42:00-06:00") -> where
        the report stands, the step's origin and the photo's `url`. Refused before anything is
        written: a form that is not valid or a file that is not a photo we keep (400; 413 over
        PHOTO_MAX_BYTES); tracking then refuses a step out of place (403, 409) as for any step."""
        principal = self.auth.require("crew", "supervisor")
        if request.mimetype != MULTIPART:
            raise WireError("unsupported_media_type", f"send the photo as {MULTIPART}",
                            {"photo": [f"a {MULTIPART} form with the file `photo`"]})
        data = PHOTO_STEP.load(request.form.to_dict())
        try:
            photo = self.photos.prepare(read_upload(request, "photo", self.photos.max_bytes))
        except PhotoRejected as refused:
            raise rejected(refused) from None
        name, kept_now = self._keep(folio, data["step_id"], photo)
        payload = {"url": self.photos.url(name), "caption": data["caption"],
                   "stage": data["stage"], "step_id": data["step_id"],
                   "occurred_at": data["occurred_at"].isoformat()}
        try:
            report = forward(self.tracking, principal, "add_photo", folio, payload,
                             request)
        except WireError as refused:
            # Tracking said no (403, 404, 409): the photo is nobody's. Without an answer (a
            # timeout, 503) it may yet be recorded, and the phone will send the step again.
            if kept_now and refused.status < 500:
                self._forget(name)
            raise
        return json_response({**report, "url": payload["url"]})

    @http("GET", "/media/<string:name>")
    @api(answers={200: dict.fromkeys(PHOTOS), 404: PLAIN})
    def media_photo(self, request: Request, name: str) -> Response:
        """A field photo kept in the local store, e.g. GET /media/3f2a….jpg (404 for any other
        name): its stored type, inline, with nosniff and a sandboxing Content-Security-Policy."""
        return media_response(self.photos, name)

    def _keep(self, folio: str, step_id: str, photo: CleanPhoto) -> tuple[str, bool]:
        """The name the step's photo is kept under, and whether this try kept it: the photo an
        earlier try of the step kept (of whatever kind) stands, as tracking's record of it."""
        name = step_photo_name(folio, step_id, photo.kind)
        others = [step_photo_name(folio, step_id, kind) for kind in KINDS if kind != photo.kind]
        try:
            for earlier in (name, *others):
                if self.photos.exists(earlier):
                    return earlier, False
            self.photos.put(name, photo.data, photo.content_type)
        except Exception:  # the disk or the object store: the phone may send the step again
            log.exception("the photo store failed")
            raise WireError("unavailable", "The photo could not be stored; try again.",
                            {"photo": ["No pudimos guardar la foto; intenta de nuevo. / The "
                                       "photo could not be stored; try again."]}) from None
        return name, True

    def _forget(self, name: str) -> None:
        try:
            self.photos.delete(name)
        except Exception:  # the refusal is what the caller needs to hear; the file is logged
            log.exception("a refused field photo could not be deleted: %s", name)
