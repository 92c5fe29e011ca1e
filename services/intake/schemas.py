"""marshmallow schemas of intake's JSON API and staff entry (unknown fields are refused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.contracts.contacts import ContactSchema
from shared.contracts.fields import (
    AttributeMap,
    Line,
    MediaUrl,
    Text,
    TrustedMedia,
    finite,
    one_of,
    pattern,
)

from .catalog import MAX_TEXT

STAFF_CHANNELS = ("phone_070", "window")
IDEMPOTENCY_KEY = pattern(r"^[A-Za-z0-9_\-:.]{8,200}$", error="8 to 200 letters, digits or _ - : .")
# The photo URLs a client may reference: https, or our own media (TRUSTED_MEDIA_URLS).
TRUSTED_MEDIA = TrustedMedia()
MAX_PHOTOS = 5


def configure(config: Mapping[str, Any]) -> None:
    """Take the edge's settings from the service's configuration."""
    if config.get("TRUSTED_MEDIA_URLS") is not None:
        TRUSTED_MEDIA.set(str(config["TRUSTED_MEDIA_URLS"]))


def answers(**kwargs: Any) -> AttributeMap:
    """A category's answers: text answers as long as the catalog's longest (`text`)."""
    return AttributeMap(value_length=MAX_TEXT, **kwargs)


class LocationSchema(Schema):
    lat = finite(validate=validate.Range(-90, 90), load_default=None)
    long = finite(validate=validate.Range(-180, 180), load_default=None)
    address = Text(300, min_length=1, load_default=None)
    address_id = Line(100, min_length=1, load_default=None)
    zipcode = Line(5, validate=pattern(r"^[0-9]{5}$", error="a 5-digit zip code"),
                   load_default=None)

    @validates_schema
    def point_or_address(self, data, **kwargs):
        if (data.get("lat") is None) != (data.get("long") is None):
            raise ValidationError("lat and long go together", "lat")
        if data.get("lat") is None and not (data.get("address") or data.get("address_id")):
            raise ValidationError("give coordinates (lat, long) or an address", "location")


def clean_location(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


class ReportSchema(Schema):
    """POST /api/v1/reports  {"service_code": "bache", "description": "Bache profundo",
    "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"},
    "contact": {"email": "ana@example.com", "notify_by": ["email"]}}"""

    service_code = Line(64, min_length=1, required=True)
    description = Text(4000, min_length=1, strip=True, required=True)
    location = fields.Nested(LocationSchema, required=True)
    answers = answers(load_default=dict)
    media_urls = fields.List(MediaUrl(TRUSTED_MEDIA), validate=validate.Length(max=MAX_PHOTOS),
                             load_default=list)
    contact = fields.Nested(ContactSchema, load_default=None)


class StaffReportSchema(ReportSchema):
    """A 070 operator or window clerk enters a report for a caller or visitor."""

    channel = one_of(STAFF_CHANNELS, required=True)


class FollowSchema(Schema):
    contact = fields.Nested(ContactSchema, required=True)


class NearbySchema(Schema):
    service_code = Line(64, min_length=1, required=True)
    lat = finite(required=True, validate=validate.Range(-90, 90))
    long = finite(required=True, validate=validate.Range(-180, 180))


class MarkDuplicateSchema(Schema):
    duplicate_of = Line(40, min_length=1, required=True)
