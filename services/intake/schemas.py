"""marshmallow schemas of intake's JSON API and staff entry (unknown fields are refused)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.contracts.contacts import ContactSchema

Text = fields.String
STAFF_CHANNELS = ("phone_070", "window")
IDEMPOTENCY_KEY = validate.Regexp(r"^[A-Za-z0-9_\-:.]{8,200}$",
                                  error="8 to 200 letters, digits or _ - : .")


class LocationSchema(Schema):
    lat = fields.Float(validate=validate.Range(-90, 90), load_default=None, allow_nan=False)
    long = fields.Float(validate=validate.Range(-180, 180), load_default=None, allow_nan=False)
    address = Text(validate=validate.Length(1, 300), load_default=None)
    address_id = Text(validate=validate.Length(1, 100), load_default=None)
    zipcode = Text(validate=validate.Regexp(r"^[0-9]{5}$", error="a 5-digit zip code"),
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

    service_code = Text(required=True, validate=validate.Length(1, 64))
    description = Text(required=True, validate=validate.Length(1, 4000))
    location = fields.Nested(LocationSchema, required=True)
    answers = fields.Dict(keys=Text(validate=validate.Length(1, 64)), load_default=dict)
    media_urls = fields.List(fields.Url(require_tld=False, schemes={"http", "https"}),
                             validate=validate.Length(max=5), load_default=list)
    contact = fields.Nested(ContactSchema, load_default=None)


class StaffReportSchema(ReportSchema):
    """A 070 operator or window clerk enters a report for a caller or visitor."""

    channel = Text(required=True, validate=validate.OneOf(STAFF_CHANNELS))


class FollowSchema(Schema):
    contact = fields.Nested(ContactSchema, required=True)


class NearbySchema(Schema):
    service_code = Text(required=True, validate=validate.Length(1, 64))
    lat = fields.Float(required=True, validate=validate.Range(-90, 90), allow_nan=False)
    long = fields.Float(required=True, validate=validate.Range(-180, 180), allow_nan=False)


class MarkDuplicateSchema(Schema):
    duplicate_of = Text(required=True, validate=validate.Length(1, 40))
