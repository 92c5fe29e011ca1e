"""What tracking answers about one report, as its readers get it over RPC (`get_report`,
`get_report_staff`, `run_command`) and HTTP (tracking's doors and intake's, which pass it on): the
citizen's view (public, or private with the access token), the staff view, and where a report
stands after a command. Described here for both services' OpenAPI documents; tracking builds them
(services/tracking/read/timeline.py, write/commands.py)."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate

from .events import RESOLUTIONS, STEPS

STATUSES = ("open", "closed")


def _nullable(field: type[fields.Field[Any]], **kwargs: Any) -> fields.Field[Any]:
    return field(required=True, allow_none=True, **kwargs)


class ShownServiceSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class ShownLocationSchema(Schema):
    lat = _nullable(fields.Float)
    long = _nullable(fields.Float)
    address = _nullable(fields.String)


class ShownPhotoSchema(Schema):
    url = fields.String(required=True)
    caption = fields.String(required=True)
    stage = fields.String(required=True)
    at = fields.DateTime(required=True)


class ShownMaterialSchema(Schema):
    code = fields.String(required=True)
    quantity = fields.Float(required=True)
    unit = _nullable(fields.String)
    description = _nullable(fields.String)
    unit_cost = fields.String(allow_none=True)  # pesos, priced by crews when it was logged
    cost = fields.String(allow_none=True)
    at = fields.DateTime(required=True)


class TimelineEntrySchema(Schema):
    """One step of the timeline; each event type adds the fields its audience may read."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    label = fields.String(required=True)
    at = fields.DateTime(required=True)
    actor_role = fields.String(required=True)


class CitizenViewSchema(Schema):
    """The status page's data (public; the access token adds private comments)."""

    folio = fields.String(required=True)
    service = fields.Nested(ShownServiceSchema, required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    step = fields.String(required=True, validate=validate.OneOf(list(STEPS)))
    step_label = _nullable(fields.String)
    department = fields.String(required=True)
    opened_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    due_at = _nullable(fields.DateTime)
    closed_at = _nullable(fields.DateTime)
    resolution = _nullable(fields.String, validate=validate.OneOf(list(RESOLUTIONS)))
    resolution_label = _nullable(fields.String)
    duplicate_of = _nullable(fields.String)
    location = fields.Nested(ShownLocationSchema, required=True)
    description = fields.String(required=True)
    media_urls = fields.List(fields.String(), required=True)
    photos = fields.List(fields.Nested(ShownPhotoSchema), required=True)
    materials = fields.List(fields.Nested(ShownMaterialSchema), required=True)
    timeline = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class PlaceSchema(Schema):
    """Where, as the report was opened (coordinates, an address, the caller's ids)."""

    class Meta:
        unknown = INCLUDE

    lat = fields.Float(allow_none=True)
    long = fields.Float(allow_none=True)
    address = fields.String(allow_none=True)


class StaffViewSchema(CitizenViewSchema):
    """Everything: actors, internal notes (not for a crew), priority, answers, the location."""

    report_id = fields.String(required=True)
    crew_id = _nullable(fields.String)
    channel = _nullable(fields.String)
    priority = _nullable(fields.String)
    citizen_feedback = _nullable(fields.String, validate=validate.OneOf(
        ["confirmed", "disputed"]))
    version = fields.Integer(required=True)
    attributes = fields.Dict(required=True)
    location = fields.Nested(PlaceSchema, required=True)


class ReportStateSchema(Schema):
    """What a command answers: where the report stands now."""

    folio = fields.String(required=True)
    version = fields.Integer(required=True)
    step = fields.String(required=True, validate=validate.OneOf(list(STEPS)))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    crew_id = _nullable(fields.String)
    resolution = _nullable(fields.String, validate=validate.OneOf(list(RESOLUTIONS)))
    duplicate_of = _nullable(fields.String)
    department = fields.String(required=True)
