"""IntakeApplication: the front door's use cases. Every channel ends in `submit`, which gives the
citizen a folio in the same answer. It knows nothing of nameko or HTTP: tracking and the contact
handoff come in as small ports."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.contracts.contacts import has_contact
from shared.contracts.errors import WireError

from .catalog import CatalogError, ServiceDefinition, check_definition
from .store import IntakeStore

log = logging.getLogger(__name__)
# Tracking's answers that a retry of the same request would get again: nothing was opened.
REFUSED_FOR_GOOD = (400, 401, 403, 404, 422)
CHANNELS = ("web", "chatbot", "app", "phone_070", "window", "open311")
EARTH_RADIUS_M = 6_371_000.0


class Tracking(Protocol):
    # The RPC client itself: the staff lookups and Open311's reads pass its answers on as they are.
    remote: Any

    def open_report(self, payload: dict[str, Any], on_behalf_of: str | None) -> dict[str, Any]: ...

    def open_nearby(self, service_code: str, bbox: tuple[float, float, float, float]
                    ) -> list[dict[str, Any]]: ...

    def public_report(self, folio: str, access_token: str | None = None
                      ) -> dict[str, Any] | None: ...


class Contacts(Protocol):
    def subscribe(self, request: dict[str, Any]) -> None: ...


class SubmissionInProgress(Exception):
    """The same idempotency key is held by an attempt that cannot be repeated here (claimed by
    an older version of intake); retry in a moment."""


class IdempotencyKeyReused(Exception):
    """The idempotency key was already used for a different report."""


class UnknownService(LookupError):
    """No active service in the catalog has this code."""


@dataclass
class Submission:
    """One citizen report as any channel received it (already validated for shape)."""

    channel: str
    service_code: str
    description: str
    location: dict[str, Any]
    answers: dict[str, Any] = field(default_factory=dict)
    media_urls: list[str] = field(default_factory=list)
    contact: dict[str, Any] | None = None
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        body = {k: v for k, v in self.__dict__.items() if k != "idempotency_key"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class IntakeApplication:
    def __init__(self, store: IntakeStore, tracking: Tracking, contacts: Contacts,
                 *, duplicate_radius_m: float = 50.0, status_url: str = "") -> None:
        self.store = store
        self.tracking = tracking
        self.contacts = contacts
        self.duplicate_radius_m = duplicate_radius_m
        self.status_url = status_url.rstrip("/")

    # ---- the catalog --------------------------------------------------------------------------

    def catalog(self, include_inactive: bool = False) -> list[ServiceDefinition]:
        """Active services, by group then name (as the portal and Open311 list them)."""
        services = self.store.services().values()
        return sorted((s for s in services if s.active or include_inactive),
                      key=lambda s: (s.group, s.name))

    def service(self, code: str) -> ServiceDefinition:
        definition = self.store.services().get(code)
        if definition is None or not definition.active:
            raise UnknownService(code)
        return definition

    def save_service(self, data: dict[str, Any]) -> ServiceDefinition:
        """An admin adds or changes a service: {"code": "bache", "name": "Bache", ...}."""
        definition = check_definition(data)
        self.store.put_service(definition)
        return definition

    # ---- reporting ----------------------------------------------------------------------------

    def submit(self, submission: Submission, on_behalf_of: str | None = None) -> dict[str, Any]:
        """Open the report in tracking and answer with its folio. The same idempotency key gives
        the same answer again, never a second report.

        Returns {"folio", "access_token", "token", "opened_at", "expected_at", "service_code",
        "channel", "status_url"}."""
        definition = self.service(submission.service_code)
        answers = definition.check_answers(submission.answers)
        key = submission.idempotency_key
        token, access_token = secrets.token_hex(12), secrets.token_urlsafe(18)
        request: dict[str, Any] = {}
        if key is not None:
            claim = self.store.claim(key, submission.fingerprint(), submission.channel, token,
                                     access_token)
            if claim.outcome == "done":
                return claim.response or {}
            if claim.outcome == "mismatch":
                raise IdempotencyKeyReused(key)
            if claim.access_token is None:  # claimed before access tokens were kept here
                raise SubmissionInProgress(key)
            # New, or an earlier attempt that never finished (it timed out, or this process died
            # after tracking saved): tracking answers a repeated request key with the report the
            # first attempt opened, so the key is never released and never gives two reports.
            token, access_token = claim.token or token, claim.access_token
            request = {"request_key": key, "access_token": access_token}
        payload = {
            "service_code": definition.code, "service_name": definition.name,
            "department": definition.department, "description": submission.description,
            "location": submission.location, "attributes": answers,
            "media_urls": submission.media_urls, "sla_hours": definition.sla_hours,
            "channel": submission.channel, **request,
        }
        try:
            opened = self.tracking.open_report(payload, on_behalf_of)
        except WireError as refused:
            if key is not None and refused.status in REFUSED_FOR_GOOD:
                self.store.release(key, submission.fingerprint())
            raise
        if submission.media_urls:
            self.store.photos_used(submission.media_urls, opened["folio"])
        receipt = {
            "folio": opened["folio"], "access_token": opened["access_token"],
            "token": token, "opened_at": opened["opened_at"],
            "expected_at": opened.get("due_at"), "service_code": definition.code,
            "service_name": definition.name, "channel": submission.channel,
            "status_url": f"{self.status_url}/{opened['folio']}" if self.status_url else None,
        }
        if key is None:
            # No replay without a key, so the citizen's access token need not be kept here.
            kept = {k: v for k, v in receipt.items() if k != "access_token"}
            self.store.record(f"auto:{token}", submission.fingerprint(), submission.channel,
                              token, opened["folio"], kept)
        else:
            self.store.complete(key, opened["folio"], receipt)
        if has_contact(submission.contact):
            try:
                self.follow(opened["folio"], submission.contact or {}, submission.channel,
                            access_token=opened["access_token"])
            except Exception:  # the folio stands; the citizen can still follow it by folio
                log.exception("could not hand %s's contact to notifications", opened["folio"])
                return {**receipt, "subscribed": False}
        return {**receipt, "subscribed": has_contact(submission.contact)}

    def follow(self, folio: str, contact: dict[str, Any], channel: str,
               access_token: str | None = None) -> None:
        """Hand the citizen's contact details to notifications as the subscription for a folio
        (a new report's, or an existing one the citizen chose to follow instead)."""
        if not has_contact(contact):
            raise CatalogError({"contact": ["give an email or a phone number to be told"]})
        self.contacts.subscribe({
            "folio": folio, "access_token": access_token, "channel": channel,
            "contact": {k: v for k, v in contact.items() if v},
            "requested_at": datetime.now(UTC).isoformat(),
        })

    def possible_duplicates(self, service_code: str, lat: float, long: float
                            ) -> list[dict[str, Any]]:
        """Open reports of the same service within the duplicate radius, nearest first."""
        self.service(service_code)
        radius = self.duplicate_radius_m
        dlat = math.degrees(radius / EARTH_RADIUS_M)
        dlong = dlat / max(math.cos(math.radians(lat)), 1e-6)
        bbox = (lat - dlat, long - dlong, lat + dlat, long + dlong)
        found = []
        for report in self.tracking.open_nearby(service_code, bbox):
            if report.get("lat") is None or report.get("long") is None:
                continue
            distance = distance_m(lat, long, report["lat"], report["long"])
            if distance <= radius:
                found.append({**report, "distance_m": round(distance, 1)})
        return sorted(found, key=lambda r: r["distance_m"])

    def folio_for_token(self, token: str) -> tuple[bool, str | None]:
        return self.store.folio_for_token(token)


def distance_m(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(long2 - long1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))
