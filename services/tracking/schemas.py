"""marshmallow schemas of tracking's RPC and HTTP payloads (unknown fields are refused)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.contracts.events import LocationSchema as EventLocation

from .domainmodel import CHANNELS, COMMENT_VISIBILITIES, FOLIO_PATTERN, RESOLUTIONS

Text = fields.String
Channel = fields.String(validate=validate.OneOf(CHANNELS), load_default=None)
Folio = fields.String(required=True, validate=validate.Regexp(FOLIO_PATTERN, error="not a folio"))


class LocationSchema(EventLocation):
    @validates_schema
    def coordinates_or_address(self, data, **kwargs):
        has_point = data.get("lat") is not None and data.get("long") is not None
        if (data.get("lat") is None) != (data.get("long") is None):
            raise ValidationError("lat and long go together", "lat")
        if not has_point and not (data.get("address") or data.get("address_id")):
            raise ValidationError("give coordinates (lat, long) or an address", "address")


class OpenReportSchema(Schema):
    service_code = Text(required=True, validate=validate.Length(1, 64))
    service_name = Text(required=True, validate=validate.Length(1, 200))
    department = Text(required=True, validate=validate.Length(1, 100))
    description = Text(required=True, validate=validate.Length(1, 4000))
    location = fields.Nested(LocationSchema, required=True)
    attributes = fields.Dict(keys=Text(), load_default=dict)
    media_urls = fields.List(Text(validate=validate.Length(1, 2000)), load_default=list,
                             validate=validate.Length(max=20))
    sla_hours = fields.Float(validate=validate.Range(min=0, max=24 * 365), load_default=None)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    # A caller that may retry names the open and brings the citizen's token (see open_report).
    request_key = Text(validate=validate.Length(1, 200), load_default=None)
    access_token = Text(validate=validate.Length(20, 200), load_default=None)

    @validates_schema
    def key_with_token(self, data, **kwargs):
        if (data.get("request_key") is None) != (data.get("access_token") is None):
            raise ValidationError("request_key and access_token go together", "request_key")


class CommandSchema(Schema):
    channel = Channel


class TriageSchema(CommandSchema):
    department = Text(required=True, validate=validate.Length(1, 100))
    priority = Text(required=True, validate=validate.OneOf(("low", "normal", "high", "urgent")))
    service_code = Text(required=True, validate=validate.Length(1, 64))


class AssignSchema(CommandSchema):
    crew_id = Text(required=True, validate=validate.Length(1, 64))


class FieldStepSchema(CommandSchema):
    step_id = Text(validate=validate.Length(1, 100), load_default=None)
    occurred_at = fields.AwareDateTime(load_default=None)


class PhotoSchema(FieldStepSchema):
    url = Text(required=True, validate=validate.Length(1, 2000))
    caption = Text(validate=validate.Length(max=500), load_default="")
    stage = Text(validate=validate.OneOf(("report", "before", "during", "after")),
                 load_default="during")


class MaterialItemSchema(Schema):
    code = Text(required=True, validate=validate.Length(1, 64))
    quantity = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    unit = Text(validate=validate.Length(max=20), load_default=None)
    description = Text(validate=validate.Length(max=200), load_default=None)


class MaterialsSchema(FieldStepSchema):
    items = fields.List(fields.Nested(MaterialItemSchema), required=True,
                        validate=validate.Length(1, 100))


class CompleteWorkSchema(FieldStepSchema):
    notes = Text(validate=validate.Length(max=4000), load_default="")


class CloseSchema(CommandSchema):
    resolution = Text(required=True, validate=validate.OneOf(
        [r for r in RESOLUTIONS if r != "duplicate"],
        error="one of: fixed, not_fixed, not_our_responsibility, no_action_needed, cancelled "
              "(duplicates are marked with mark_duplicate)"))
    notes = Text(validate=validate.Length(max=4000), load_default="")


class ReopenSchema(CommandSchema):
    reason = Text(required=True, validate=validate.Length(1, 2000))


class MarkDuplicateSchema(CommandSchema):
    duplicate_of = Folio


class CommentSchema(CommandSchema):
    text = Text(required=True, validate=validate.Length(1, 4000))
    visibility = Text(validate=validate.OneOf(COMMENT_VISIBILITIES), load_default="public")


class ReportEventsSchema(Schema):
    """GET /reports/{folio}/events?after_version=3 (and the `report_events` RPC)."""

    folio = Folio
    after_version = fields.Integer(validate=validate.Range(min=0), load_default=0)


class CitizenFeedbackSchema(Schema):
    access_token = Text(required=True, validate=validate.Length(1, 200))
    comment = Text(validate=validate.Length(max=4000), load_default="")
    channel = fields.String(validate=validate.OneOf(CHANNELS), load_default="web")


class CommaList(fields.Field):
    """`a,b,c` in a query string, or a list in RPC."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else str(value).split(",")
        items = [str(item).strip() for item in items if str(item).strip()]
        if not items:
            raise ValidationError("give at least one value")
        return items


class BBox(fields.Field):
    """`min_lat,min_long,max_lat,max_long`."""

    def _deserialize(self, value, attr, data, **kwargs):
        parts = value if isinstance(value, list) else str(value).split(",")
        try:
            numbers = [float(p) for p in parts]
        except (TypeError, ValueError):
            raise ValidationError("four numbers: min_lat,min_long,max_lat,max_long") from None
        if len(numbers) != 4 or numbers[0] > numbers[2] or numbers[1] > numbers[3]:
            raise ValidationError("four numbers: min_lat,min_long,max_lat,max_long")
        return tuple(numbers)


class SearchSchema(Schema):
    status = Text(validate=validate.OneOf(("open", "closed")), load_default=None)
    department = Text(load_default=None)
    crew_id = Text(load_default=None)
    service_codes = CommaList(load_default=None, data_key="service_code")
    steps = CommaList(load_default=None, data_key="step")
    folios = CommaList(load_default=None, data_key="folio")
    opened_from = fields.AwareDateTime(load_default=None)
    opened_to = fields.AwareDateTime(load_default=None)
    updated_since = fields.AwareDateTime(load_default=None)
    bbox = BBox(load_default=None)
    limit = fields.Integer(validate=validate.Range(1, 1000), load_default=50)
    offset = fields.Integer(validate=validate.Range(min=0), load_default=0)
    order = Text(validate=validate.OneOf(("opened_at desc", "opened_at asc", "updated_at desc",
                                          "updated_at asc")), load_default="opened_at desc")


class Open311RequestsSchema(SearchSchema):
    """Open311 GET requests: the public filters only (no department, crew or step)."""

    class Meta:
        exclude = ("department", "crew_id", "steps")


class Open311UpdatesSchema(Schema):
    """Open311 servicerequestupdates: public timeline entries after `since`."""

    since = fields.AwareDateTime(required=True)
    limit = fields.Integer(validate=validate.Range(1, 1000), load_default=100)
    service_codes = CommaList(load_default=None, data_key="service_code")
