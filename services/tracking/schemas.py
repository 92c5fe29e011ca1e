"""marshmallow schemas of tracking's RPC and HTTP payloads (unknown fields are refused)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from shared.contracts.events import LocationSchema as EventLocation
from shared.contracts.fields import (
    AttributeMap,
    Line,
    MediaUrl,
    QueryDateTime,
    RecentDateTime,
    Text,
    TimeWindow,
    TrustedMedia,
    finite,
    one_of,
    pattern,
    text_problem,
)
from shared.contracts.views import CitizenViewSchema, ReportStateSchema, StaffViewSchema

from .domainmodel import CHANNELS, COMMENT_VISIBILITIES, FOLIO_PATTERN, RESOLUTIONS, eta_problem

# A crew's `occurred_at` and the photo URLs a client may give: set from configuration when the
# service starts (OCCURRED_AT_MAX_AGE_DAYS, TRUSTED_MEDIA_URLS).
OCCURRED_AT = TimeWindow()
TRUSTED_MEDIA = TrustedMedia()
MAX_IDS = 1000  # values of one list filter (Open311 asks for up to 1000 requests at once)

Channel = one_of(CHANNELS, load_default=None)
Folio = Line(40, required=True, validate=pattern(FOLIO_PATTERN.pattern, error="not a folio"))


def configure(config: Mapping[str, Any]) -> None:
    """Take the edge's settings from the service's configuration."""
    days = config.get("OCCURRED_AT_MAX_AGE_DAYS")
    if days not in (None, ""):
        OCCURRED_AT.past = timedelta(days=float(days))
    if config.get("TRUSTED_MEDIA_URLS") is not None:
        TRUSTED_MEDIA.set(str(config["TRUSTED_MEDIA_URLS"]))


class LocationSchema(EventLocation):
    address = Text(300, allow_none=True, load_default=None)
    address_id = Line(100, allow_none=True, load_default=None)

    @validates_schema
    def coordinates_or_address(self, data, **kwargs):
        has_point = data.get("lat") is not None and data.get("long") is not None
        if (data.get("lat") is None) != (data.get("long") is None):
            raise ValidationError("lat and long go together", "lat")
        if not has_point and not (data.get("address") or data.get("address_id")):
            raise ValidationError("give coordinates (lat, long) or an address", "address")


class OpenReportSchema(Schema):
    service_code = Line(64, min_length=1, required=True)
    service_name = Line(200, min_length=1, required=True)
    department = Line(100, min_length=1, required=True)
    description = Text(4000, min_length=1, required=True)
    location = fields.Nested(LocationSchema, required=True)
    attributes = AttributeMap(load_default=dict)
    media_urls = fields.List(MediaUrl(TRUSTED_MEDIA), load_default=list,
                             validate=validate.Length(max=20))
    sla_hours = finite(validate=validate.Range(min=0, max=24 * 365), load_default=None)
    channel = one_of(CHANNELS, required=True)
    # A caller that may retry names the open and brings the citizen's token (see open_report).
    request_key = Line(200, min_length=1, load_default=None)
    access_token = Line(200, min_length=20, load_default=None)

    @validates_schema
    def key_with_token(self, data, **kwargs):
        if (data.get("request_key") is None) != (data.get("access_token") is None):
            raise ValidationError("request_key and access_token go together", "request_key")


class CommandSchema(Schema):
    channel = Channel
    # The client's key for the command: the same key again records nothing (see _change).
    step_id = Line(100, min_length=1, load_default=None)


class TriageSchema(CommandSchema):
    department = Line(100, min_length=1, required=True)
    priority = one_of(("low", "normal", "high", "urgent"), required=True)
    service_code = Line(64, min_length=1, required=True)


class AssignSchema(CommandSchema):
    crew_id = Line(64, min_length=1, required=True)


class FieldStepSchema(CommandSchema):
    occurred_at = RecentDateTime(OCCURRED_AT, load_default=None)


class EnRouteSchema(FieldStepSchema):
    # When the crew expects to arrive (citizens see it): after occurred_at, within a day of it.
    eta = QueryDateTime(load_default=None)

    @validates_schema
    def eta_after_setting_out(self, data, **kwargs):
        problem = eta_problem(data.get("eta"), data.get("occurred_at"))
        if problem:
            raise ValidationError(problem, "eta")


class PhotoSchema(FieldStepSchema):
    url = MediaUrl(TRUSTED_MEDIA, required=True)
    caption = Text(500, load_default="")
    stage = one_of(("report", "before", "during", "after"), load_default="during")


PESOS = pattern(r"^\d{1,10}\.\d{2}$", "pesos and centavos as a string, e.g. \"1850.00\"")


class MaterialItemSchema(Schema):
    code = Line(64, min_length=1, required=True)
    quantity = finite(required=True, validate=validate.Range(min=0, max=1_000_000,
                                                             min_inclusive=False))
    unit = Line(20, load_default=None)
    description = Text(200, load_default=None)
    # The catalog's price when crews forwards the entry (pesos, e.g. "1850.00").
    unit_cost = Line(20, load_default=None, validate=PESOS)
    cost = Line(20, load_default=None, validate=PESOS)


class MaterialsSchema(FieldStepSchema):
    items = fields.List(fields.Nested(MaterialItemSchema), required=True,
                        validate=validate.Length(1, 100))


class CompleteWorkSchema(FieldStepSchema):
    notes = Text(4000, load_default="")


class CloseSchema(CommandSchema):
    resolution = Line(32, required=True, validate=validate.OneOf(
        [r for r in RESOLUTIONS if r != "duplicate"],
        error="one of: fixed, not_fixed, not_our_responsibility, no_action_needed, cancelled "
              "(duplicates are marked with mark_duplicate)"))
    notes = Text(4000, load_default="")


class ReopenSchema(CommandSchema):
    reason = Text(2000, min_length=1, required=True)


class MarkDuplicateSchema(CommandSchema):
    duplicate_of = Folio


class CommentSchema(CommandSchema):
    text = Text(4000, min_length=1, required=True)
    visibility = one_of(COMMENT_VISIBILITIES, load_default="public")


class ReportEventsSchema(Schema):
    """GET /reports/{folio}/events?after_version=3 (and the `report_events` RPC)."""

    folio = Folio
    after_version = fields.Integer(validate=validate.Range(0, 2**31 - 1), load_default=0)


class CitizenFeedbackSchema(Schema):
    access_token = Line(200, min_length=1, required=True)
    comment = Text(4000, load_default="")
    channel = one_of(CHANNELS, load_default="web")
    step_id = Line(100, min_length=1, load_default=None)


class CommaList(fields.Field):
    """`a,b,c` in a query string, or a list in RPC: at most MAX_IDS single-line values."""

    # Its shape in GET /openapi.json (shared/chassis/openapi.py).
    openapi_schema = {"type": "string", "pattern": r"[^\s,]",
                      "description": f"Comma-separated, at most {MAX_IDS} values."}

    def __init__(self, item_length: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item_length = item_length

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list | str):
            raise ValidationError("a comma-separated list")
        items = value if isinstance(value, list) else value.split(",", MAX_IDS)
        if len(items) > MAX_IDS or not all(isinstance(item, str) for item in items):
            raise ValidationError(f"at most {MAX_IDS} values, each a text")
        items = [item.strip() for item in items if item.strip()]
        if not items:
            raise ValidationError("give at least one value")
        for item in items:
            problem = text_problem(item, single_line=True)
            if problem is None and len(item) > self.item_length:
                problem = f"each value at most {self.item_length} characters"
            if problem:
                raise ValidationError(problem)
        return items


class BBox(fields.Field):
    """`min_lat,min_long,max_lat,max_long`."""

    HINT = "four numbers: min_lat,min_long,max_lat,max_long (-90..90, -180..180)"
    openapi_schema = {"type": "string", "pattern": "^[^,]+,[^,]+,[^,]+,[^,]+$",
                      "description": HINT}

    def _deserialize(self, value, attr, data, **kwargs):
        parts = value if isinstance(value, list) else str(value)[:200].split(",")
        try:
            numbers = [float(p) for p in parts] if len(parts) == 4 else []
        except (TypeError, ValueError):
            raise ValidationError(self.HINT) from None
        if (len(numbers) != 4 or numbers[0] > numbers[2] or numbers[1] > numbers[3]
                or not all(-90 <= n <= 90 for n in numbers[::2])
                or not all(-180 <= n <= 180 for n in numbers[1::2])):
            raise ValidationError(self.HINT)  # NaN fails the ranges too
        return tuple(numbers)


class SearchSchema(Schema):
    status = one_of(("open", "closed"), load_default=None)
    department = Line(100, load_default=None)
    crew_id = Line(64, load_default=None)
    service_codes = CommaList(load_default=None, data_key="service_code")
    steps = CommaList(load_default=None, data_key="step")
    folios = CommaList(40, load_default=None, data_key="folio")
    opened_from = QueryDateTime(load_default=None)
    opened_to = QueryDateTime(load_default=None)
    updated_since = QueryDateTime(load_default=None)
    bbox = BBox(load_default=None)
    limit = fields.Integer(validate=validate.Range(1, 1000), load_default=50)
    offset = fields.Integer(validate=validate.Range(0, 10**12), load_default=0)
    order = one_of(("opened_at desc", "opened_at asc", "updated_at desc", "updated_at asc"),
                   load_default="opened_at desc")


class Open311RequestsSchema(SearchSchema):
    """Open311 GET requests: the public filters only (no department, crew or step)."""

    class Meta:
        exclude = ("department", "crew_id", "steps")


class Open311UpdatesSchema(Schema):
    """Open311 servicerequestupdates: public timeline entries after `since`."""

    since = QueryDateTime(required=True)
    limit = fields.Integer(validate=validate.Range(1, 1000), load_default=100)
    service_codes = CommaList(load_default=None, data_key="service_code")


# ---- answers, as the OpenAPI document shows them (shared/chassis/openapi.py) -------------------


def maybe(kind: type[fields.Field] = fields.String) -> fields.Field:
    """An answer's field that is always there, maybe null."""
    return kind(required=True, allow_none=True)


class FolioPathSchema(Schema):
    folio = Folio


class CommandKeySchema(Schema):
    # Read as `step_id` (one line, at most 100 characters) unless the body carries one.
    step_id = fields.String(data_key="Idempotency-Key", metadata={
        "description": "The client's key for the command (a repeat records nothing): one line "
                       "of at most 100 characters, unless the body's `step_id` is given."})


class TokenQuerySchema(Schema):
    token = fields.String(metadata={"description": "The citizen's access token (or the "
                                                   "X-Access-Token header)."})


class LookupQuerySchema(Schema):
    folio = fields.String(metadata={"description": "A folio: the answer sends you to its page."})


class OpenedSchema(Schema):
    """POST /reports: the folio, and the access token only its citizen should get."""

    folio = fields.String(required=True)
    access_token = fields.String(required=True)
    opened_at = fields.DateTime(required=True)
    due_at = maybe(fields.DateTime)
    version = fields.Integer(required=True)


class CloudEventSchema(Schema):
    """A report event as the relay publishes it (CloudEvents 1.0, with `streamversion`)."""

    class Meta:
        unknown = INCLUDE

    specversion = fields.String(required=True, validate=validate.OneOf(["1.0"]))
    id = fields.String(required=True)
    source = fields.String(required=True)
    type = fields.String(required=True)
    subject = fields.String(required=True)
    time = fields.DateTime(required=True)
    datacontenttype = fields.String(required=True)
    data = fields.Dict(required=True)


class EventsSchema(Schema):
    events = fields.List(fields.Nested(CloudEventSchema), required=True)


class ReportSummarySchema(Schema):
    """A search result: the row's indexed columns and their labels."""

    folio = fields.String(required=True)
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    status = fields.String(required=True)
    step = fields.String(required=True)
    step_label = maybe()
    department = fields.String(required=True)
    crew_id = maybe()
    channel = maybe()
    priority = maybe()
    resolution = maybe()
    resolution_label = maybe()
    duplicate_of = maybe()
    opened_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    closed_at = maybe(fields.DateTime)
    due_at = maybe(fields.DateTime)
    lat = maybe(fields.Float)
    long = maybe(fields.Float)
    address = maybe()
    version = fields.Integer(required=True)


class SearchResultsSchema(Schema):
    reports = fields.List(fields.Nested(ReportSummarySchema), required=True)


REPORT_VIEWS = (CitizenViewSchema, StaffViewSchema)  # GET /reports/{folio}: one of them
REPORT_STATE = ReportStateSchema  # what a command answers
