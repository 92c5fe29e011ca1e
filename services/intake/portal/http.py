"""The citizen's web portal (a mixin of IntakeService): pick a category, fill its form, get a
folio; look a folio up and follow it. Server-rendered Spanish HTML that works on a phone."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import eventlet
from nameko.exceptions import RemoteError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from shared.chassis.http import http, static_file
from shared.chassis.openapi import HTML, api
from shared.chassis.photos import CleanPhoto, PhotoRejected, check
from shared.contracts.errors import WireError

from .. import schemas
from ..application import Submission, SubmissionInProgress, UnknownService
from ..catalog import ServiceDefinition
from ..errors import NotFound
from ..photos import PhotoEndpoints, upload_limit
from ..uploads import UploadRefused
from .forms import (
    FIELD_MESSAGES,
    FOLIO,
    FORM_LAYOUT,
    IN_PROGRESS_TRIES,
    IN_PROGRESS_WAIT_S,
    check_report,
    follow_contact,
    normal_folio,
    read_report,
)
from .render import PortalTemplates, Unavailable, html_errors

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


class PortalPages(PhotoEndpoints):
    """/ (categories), /reportar/<code> (the form), /folio (look one up: tracking's status
    page), /seguir/<folio> (be told of each step)."""

    portal = PortalTemplates()

    @http("GET", "/", html=True)
    @html_errors
    def portal_home(self, request: Request) -> Response:
        """The categories a citizen can report, by group."""
        groups: dict[str, list[ServiceDefinition]] = {}
        for definition in self.intake.catalog():
            groups.setdefault(definition.group, []).append(definition)
        return self.portal.render("home.html", groups=groups)

    @http("GET", "/reportar/<string:code>", html=True)
    @api(answers={200: HTML})
    @html_errors
    def portal_form(self, request: Request, code: str) -> Response:
        """The form of one category, e.g. GET /reportar/bache."""
        return self._form(self._definition(code), MultiDict(), {}, 200)

    @http("POST", "/reportar/<string:code>", html=True, max_body=upload_limit)
    @api(form=schemas.PortalReportFormSchema, answers={200: HTML, 201: HTML}, errors=(409, 429))
    @html_errors
    def portal_submit(self, request: Request, code: str) -> Response:
        """The form sent (multipart): 400 with the form and its messages, the nearby open
        reports to follow instead, or 201 with the folio."""
        definition = self._definition(code)
        form = request.form
        data = read_report(form, definition, self.portal.zone)
        loaded, errors = check_report(data, definition)
        photo, photo_url, retry_after = self._photo(request, errors)
        if errors:
            return self._form(definition, form, errors, 429 if retry_after else 400, retry_after)
        given = form.get("idempotency_key") or ""
        key = f"web:{given}" if re.match(r"^[A-Za-z0-9_\-]{8,100}$", given) else None
        if photo is not None:
            # Kept before tracking is asked: if opening the report fails now, the photo stays
            # as an orphan file (harmless: nothing references it, a retry reuses its name).
            try:
                photo_url = self.photos.keep(photo, seed=key)
                self.intake.store.photo_uploaded(photo_url.rpartition("/")[2])
            except Exception:
                log.exception("the photo store failed")
                raise Unavailable("No pudimos guardar tu foto. Intenta de nuevo en unos "
                                  "minutos; tu reporte no se envió.") from None
        location = schemas.clean_location(loaded["location"])
        if "lat" in location and form.get("confirmar") != "1":
            nearby = self._nearby(code, location["lat"], location["long"])
            if nearby:
                carry = [(name, value) for name, value in form.items(multi=True)
                         if name not in ("photo_url", "confirmar")]
                return self.portal.render("duplicates.html", definition=definition,
                                          nearby=nearby[:5], carry=carry, photo_url=photo_url,
                                          values=form)
        receipt = self._submit(Submission(
            channel="web", service_code=code, description=loaded["description"].strip(),
            location=location, answers=loaded["answers"],
            media_urls=[photo_url] if photo_url else [], contact=loaded["contact"],
            idempotency_key=key))
        token = receipt.get("access_token")  # gone from a replay after the replay window
        private_url = self.portal.status_page(receipt["folio"], token) if token else None
        return self.portal.render("receipt.html", 201, receipt=receipt, private_url=private_url)

    @http("GET", "/folio", html=True)
    @api(query=schemas.LookupQuerySchema, answers={200: HTML, 303: None})
    @html_errors
    def portal_lookup(self, request: Request) -> Response:
        """The lookup form; GET /folio?folio=QRO-2026-000123 goes to that folio's status page."""
        folio = normal_folio(request.args.get("folio", ""))
        if folio:
            return Response(status=303, headers={"Location": self.portal.status_page(folio)})
        return self.portal.render("lookup.html", folio="")

    @http("GET", "/folio/<string:folio>", html=True)
    @api(query=schemas.TokenQuerySchema, answers={303: None}, errors=(404,))
    @html_errors
    def portal_report(self, request: Request, folio: str) -> Response:
        """An older link to a folio: it goes to tracking's status page, the one page of a report
        (`?token=`, the citizen's private link, goes along)."""
        folio = normal_folio(folio)
        if not FOLIO.match(folio):
            raise NotFound(folio)
        token = request.args.get("token") or None
        return Response(status=303, headers={"Location": self.portal.status_page(folio, token)})

    @http("GET", "/seguir/<string:folio>", html=True)
    @api(answers={200: HTML}, errors=(404,))
    @html_errors
    def portal_follow_form(self, request: Request, folio: str) -> Response:
        """The form to be told of each step of a folio (the status page links here)."""
        folio = self._existing(folio)
        return self.portal.render("follow.html", folio=folio, values=MultiDict(), errors={})

    @http("POST", "/seguir/<string:folio>", html=True)
    @api(form=schemas.PortalFollowFormSchema, answers={200: HTML})
    @html_errors
    def portal_follow(self, request: Request, folio: str) -> Response:
        """Follow an existing folio instead of reporting again: contact details -> confirmation."""
        folio = self._existing(folio)
        contact, errors = follow_contact(request.form)
        if errors:
            return self.portal.render("follow.html", 400, folio=folio, values=request.form,
                                      errors=errors)
        self.intake.follow(folio, contact, "web")
        return self.portal.render("followed.html", folio=folio, contact=contact)

    @http("GET", "/static/<string:name>")
    @api(answers={200: {"text/css": None, "text/javascript": None}})
    def portal_static(self, request: Request, name: str) -> Response:
        """The pages' stylesheet and script, e.g. GET /static/portal.css."""
        return static_file(STATIC, name)

    # ---- steps of the form ---------------------------------------------------------------------

    def _existing(self, folio: str) -> str:
        """The folio as written in full, if tracking has that report; else NotFound."""
        folio = normal_folio(folio)
        if not FOLIO.match(folio) or self.intake.tracking.public_report(folio) is None:
            raise NotFound(folio)
        return folio

    def _definition(self, code: str) -> ServiceDefinition:
        try:
            return self.intake.service(code)
        except UnknownService:
            raise NotFound(code) from None

    def _form(self, definition: ServiceDefinition, values: MultiDict, errors: dict[str, str],
              status: int, retry_after: int | None = None) -> Response:
        key = values.get("idempotency_key") or str(uuid.uuid4())
        questions = sorted(definition.questions, key=lambda q: q.order)
        layout = [f"attribute[{q.code}]" for q in questions] + FORM_LAYOUT
        errors = dict(sorted(errors.items(), key=lambda item: (
            layout.index(item[0]) if item[0] in layout else len(layout))))
        # A fresh upload ticket with every form: it lets the form's photo in (uploads.py).
        ticket, _ = self.uploads.tickets.issue()
        page = self.portal.render("report_form.html", status, definition=definition,
                                  questions=questions, values=values, errors=errors,
                                  idempotency_key=key, upload_ticket=ticket,
                                  max_mb=f"{self.photos.max_bytes / (1024 * 1024):g}")
        if retry_after:
            page.headers["Retry-After"] = str(retry_after)
        return page

    def _photo(self, request: Request, errors: dict[str, str]
               ) -> tuple[CleanPhoto | None, str | None, int | None]:
        """(the new photo re-encoded, or the URL of one kept from an earlier step, and the
        seconds to wait when the quota is spent); a bad one is an error on the `photo` field.
        A new photo needs the form's upload ticket and counts against the client's quota."""
        upload = request.files.get("photo")
        data = upload.stream.read(self.photos.max_bytes + 1) if upload is not None else b""
        if data or (upload is not None and upload.filename):
            try:
                check(data, self.photos.limits)
                self.uploads.admit_citizen(self.intake.store, request.form.get("upload_ticket"),
                                           self.uploads.client(request))
                return self.photos.prepare(data), None, None
            except (PhotoRejected, UploadRefused) as refused:
                errors["photo"] = refused.spanish
                return None, None, getattr(refused, "retry_after", None)
        kept = (request.form.get("photo_url") or "").strip()
        if kept and not self.photos.owns(kept):
            errors["photo"] = FIELD_MESSAGES["photo"]
            return None, None, None
        return None, kept or None, None

    def _nearby(self, code: str, lat: float, long: float) -> list[dict[str, Any]]:
        """Open reports of the same category nearby; none if tracking cannot say (the
        suggestion is a courtesy, it must not stop a report)."""
        try:
            return self.intake.possible_duplicates(code, lat, long)
        except (WireError, RemoteError) as error:
            log.warning("no duplicate suggestions: %r", error)
            return []

    def _submit(self, submission: Submission) -> dict[str, Any]:
        """Submit; a double click's second request waits for the first and gets its receipt."""
        for _ in range(IN_PROGRESS_TRIES):
            try:
                return self.intake.submit(submission)
            except SubmissionInProgress:
                eventlet.sleep(IN_PROGRESS_WAIT_S)
        raise SubmissionInProgress(submission.idempotency_key)
