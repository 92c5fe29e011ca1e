"""marshmallow schemas of intake's JSON API and staff entry (unknown fields are refused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

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
from shared.contracts.open311 import Open311Request

from .catalog import MAX_TEXT, DefinitionSchema

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


# ---- what the doors answer, as the OpenAPI document shows them (shared/chassis/openapi.py) -----


def maybe(kind: type[fields.Field] = fields.String, **kwargs: Any) -> fields.Field:
    """An answer's field that is always there, maybe null."""
    return kind(required=True, allow_none=True, **kwargs)


class AppKeySchema(Schema):
    key = fields.String(required=True, data_key="Idempotency-Key", validate=IDEMPOTENCY_KEY,
                        metadata={"description": "A UUID per report: a retry is safe."})


class StaffKeySchema(Schema):
    key = fields.String(data_key="Idempotency-Key", validate=IDEMPOTENCY_KEY)


class ReceiptSchema(Schema):
    """A new report: its folio, the citizen's access token (a replay after REPLAY_WINDOW_HOURS
    has none) and the page to follow it."""

    folio = fields.String(required=True)
    access_token = fields.String()
    token = fields.String(required=True)
    opened_at = fields.DateTime(required=True)
    expected_at = maybe(fields.DateTime)
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    channel = fields.String(required=True)
    status_url = maybe()
    subscribed = fields.Boolean()


class CatalogServiceSchema(DefinitionSchema):
    class Meta:
        exclude = ("active",)


class ServicesSchema(Schema):
    services = fields.List(fields.Nested(CatalogServiceSchema), required=True)


class NearbyReportSchema(Open311Request):
    distance_m = fields.Float(required=True)


class NearbyReportsSchema(Schema):
    reports = fields.List(fields.Nested(NearbyReportSchema), required=True)


class FollowingSchema(Schema):
    folio = fields.String(required=True)
    subscribed = fields.Boolean(required=True)


class UploadTicketSchema(Schema):
    ticket = fields.String(required=True)
    expires_at = fields.DateTime(required=True)
    photos = fields.Integer(required=True)


class PhotoUrlSchema(Schema):
    url = fields.String(required=True)


class PhotoFormSchema(Schema):
    class Meta:
        unknown = INCLUDE  # other parts of the form are not read

    photo = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ChatbotAnswerSchema(Schema):
    sender = fields.String(required=True)
    replies = fields.List(fields.String(), required=True)
    folio = fields.String()


class PortalFormSchema(Schema):
    """A portal form: every value text; a question's answer comes as `attribute[<code>]`."""

    class Meta:
        unknown = INCLUDE


def portal_form(name: str, *texts: str, **more: fields.Field) -> type[Schema]:
    return PortalFormSchema.from_dict({**{text: fields.String() for text in texts}, **more},
                                      name=name)


CONTACT_TEXTS = ("first_name", "last_name", "email", "phone", "notify_by")
PortalReportFormSchema = portal_form(
    "PortalReportForm", "description", "address", "lat", "long", *CONTACT_TEXTS,
    "idempotency_key", "upload_ticket", "photo_url", "confirmar",
    photo=fields.Raw(metadata={"type": "string", "format": "binary"}))
PortalFollowFormSchema = portal_form("PortalFollowForm", *CONTACT_TEXTS)



class LookupQuerySchema(Schema):
    folio = fields.String(metadata={"description": "A folio: the answer sends you to its page."})


class TokenQuerySchema(Schema):
    token = fields.String(metadata={"description": "The citizen's access token: the private "
                                                   "view."})
