"""The report stream's public contract: event type names and a marshmallow schema per event."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

TYPE_PREFIX = "mx.expediente.report."

RESOLUTIONS = ("fixed", "not_fixed", "duplicate", "not_our_responsibility", "no_action_needed",
               "cancelled")


class ActorSchema(Schema):
    id = fields.String(required=True)
    role = fields.String(required=True)
    channel = fields.String(required=True)
    crew_id = fields.String(allow_none=True, load_default=None)


class LocationSchema(Schema):
    lat = fields.Float(allow_none=True, validate=validate.Range(-90, 90), load_default=None)
    long = fields.Float(allow_none=True, validate=validate.Range(-180, 180), load_default=None)
    address = fields.String(allow_none=True, load_default=None)
    address_id = fields.String(allow_none=True, load_default=None)


class ReportEventData(Schema):
    """Fields every report event carries: which report, which version of its stream, who did it."""

    folio = fields.String(required=True)
    version = fields.Integer(required=True)
    actor = fields.Nested(ActorSchema, required=True)


class FieldStepData(ReportEventData):
    step_id = fields.String(allow_none=True)
    occurred_at = fields.AwareDateTime(allow_none=True)


class OpenedData(ReportEventData):
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    department = fields.String(required=True)
    description = fields.String(required=True)
    location = fields.Nested(LocationSchema, required=True)
    attributes = fields.Dict(keys=fields.String(), required=True)
    media_urls = fields.List(fields.String(), required=True)
    due_at = fields.AwareDateTime(allow_none=True)
    channel = fields.String(required=True)


class TriagedData(ReportEventData):
    department = fields.String(required=True)
    priority = fields.String(required=True)
    service_code = fields.String(required=True)


class AssignedData(ReportEventData):
    crew_id = fields.String(required=True)


class PhotoAddedData(FieldStepData):
    url = fields.String(required=True)
    caption = fields.String(required=True)
    stage = fields.String(required=True)


class MaterialItem(Schema):
    code = fields.String(required=True)
    quantity = fields.Float(required=True)
    unit = fields.String(allow_none=True, load_default=None)
    description = fields.String(allow_none=True, load_default=None)


class MaterialsLoggedData(FieldStepData):
    items = fields.List(fields.Nested(MaterialItem), required=True)


class WorkCompletedData(FieldStepData):
    notes = fields.String(required=True)


class ClosedData(ReportEventData):
    resolution = fields.String(required=True, validate=validate.OneOf(RESOLUTIONS))
    notes = fields.String(required=True)


class ReopenedData(ReportEventData):
    reason = fields.String(required=True)


class MarkedDuplicateData(ReportEventData):
    duplicate_of = fields.String(required=True)


class CommentAddedData(ReportEventData):
    """Only public comments carry their text on the bus; private and internal ones say only that
    a comment was added."""

    visibility = fields.String(required=True)
    text = fields.String(allow_none=True)


class CitizenFeedbackData(ReportEventData):
    comment = fields.String(required=True)


SCHEMAS: dict[str, type[Schema]] = {
    "opened": OpenedData,
    "triaged": TriagedData,
    "assigned": AssignedData,
    "crew_dispatched": FieldStepData,
    "crew_en_route": FieldStepData,
    "crew_arrived": FieldStepData,
    "photo_added": PhotoAddedData,
    "materials_logged": MaterialsLoggedData,
    "work_completed": WorkCompletedData,
    "closed": ClosedData,
    "reopened": ReopenedData,
    "marked_duplicate": MarkedDuplicateData,
    "comment_added": CommentAddedData,
    "citizen_confirmed": CitizenFeedbackData,
    "citizen_disputed": CitizenFeedbackData,
}

EVENT_TYPES = tuple(TYPE_PREFIX + name for name in SCHEMAS)

_instances = {name: schema() for name, schema in SCHEMAS.items()}


def event_type(name: str) -> str:
    """`crew_arrived` -> `mx.expediente.report.crew_arrived`."""
    if name not in SCHEMAS:
        raise KeyError(f"unknown report event {name!r}")
    return TYPE_PREFIX + name


def short_name(type_: str) -> str:
    """`mx.expediente.report.crew_arrived` -> `crew_arrived`."""
    if not type_.startswith(TYPE_PREFIX):
        raise KeyError(f"not a report event type: {type_!r}")
    return type_[len(TYPE_PREFIX):]


def dump_data(name: str, data: dict, *, validate: bool = False) -> dict:
    """Serialise an event's data through its schema: only the schema's fields go out, formatted
    as the schema says. `validate=True` also loads the result back through the schema and raises
    ValidationError on a contract break; the publisher's contract tests do that for every event
    type, so the relay does not pay for it on every event."""
    schema = _instances[name]
    dumped = schema.dump(data)
    if validate:
        errors = schema.validate(dumped)
        if errors:
            raise ValidationError(errors)
    return dumped


def load_data(name: str, data: dict) -> dict:
    return _instances[name].load(data)
