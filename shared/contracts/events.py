"""The report event catalog: each event type's wire name, data schema, labels and audiences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from marshmallow import Schema, ValidationError, fields, validate

TYPE_PREFIX = "mx.expediente.report."
LANGUAGES = ("es", "en")  # Spanish first: the municipality's language


class Label(NamedTuple):
    """What a citizen reads, in each of LANGUAGES."""

    es: str
    en: str


STEPS: dict[str, Label] = {
    "opened": Label("Recibido", "Received"),
    "triaged": Label("Clasificado", "Classified"),
    "assigned": Label("Asignado", "Assigned"),
    "dispatched": Label("Cuadrilla en salida", "Crew setting out"),
    "en_route": Label("En camino", "On the way"),
    "on_site": Label("Cuadrilla en el sitio", "Crew on site"),
    "work_completed": Label("Trabajo terminado", "Work completed"),
    "closed": Label("Cerrado", "Closed"),
    "reopened": Label("Reabierto", "Reopened"),
}
RESOLUTIONS: dict[str, Label] = {
    "fixed": Label("Resuelto", "Fixed"),
    "not_fixed": Label("No resuelto", "Not fixed"),
    "duplicate": Label("Duplicado", "Duplicate"),
    "not_our_responsibility": Label("No es competencia del municipio",
                                    "Not the municipality's responsibility"),
    "no_action_needed": Label("No requiere acción", "No action needed"),
    "cancelled": Label("Cancelado", "Cancelled"),
}
STEP_LABELS = {step: label.es for step, label in STEPS.items()}
RESOLUTION_LABELS = {resolution: label.es for resolution, label in RESOLUTIONS.items()}


# ---- the data of each event ------------------------------------------------------------------


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
    """Fields every report event carries: which report, which version of its stream, who did it,
    and the client's key for the command (absent on events stored before commands had one)."""

    folio = fields.String(required=True)
    version = fields.Integer(required=True)
    actor = fields.Nested(ActorSchema, required=True)
    step_id = fields.String(allow_none=True)


class FieldStepData(ReportEventData):
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


class CrewEnRouteData(FieldStepData):
    # When the crew expects to arrive, as it said setting out; absent from older events.
    eta = fields.AwareDateTime(allow_none=True, load_default=None)


class PhotoAddedData(FieldStepData):
    url = fields.String(required=True)
    caption = fields.String(required=True)
    stage = fields.String(required=True)


class MaterialItem(Schema):
    code = fields.String(required=True)
    quantity = fields.Float(required=True)
    unit = fields.String(allow_none=True, load_default=None)
    description = fields.String(allow_none=True, load_default=None)
    # Priced by crews from its catalog at the moment the crew logged it (exact pesos, a decimal
    # string): what billing costs the repair from. Absent on entries logged outside crews.
    unit_cost = fields.String(allow_none=True, load_default=None)
    cost = fields.String(allow_none=True, load_default=None)


class MaterialsLoggedData(FieldStepData):
    items = fields.List(fields.Nested(MaterialItem), required=True)


class WorkCompletedData(FieldStepData):
    notes = fields.String(required=True)


class ClosedData(ReportEventData):
    resolution = fields.String(required=True, validate=validate.OneOf(tuple(RESOLUTIONS)))
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


# ---- the catalog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventType:
    """One event type of the report stream, as every reader of it knows it.

    `public` names the data fields that everyone may read of such an event (the status page,
    Open311); `private` the ones the holder of the report's access token reads besides. A field
    named in neither stays with staff, so a new field is private until someone decides otherwise.
    """

    name: str  # the wire name: snake_case, past tense
    schema: Schema
    label: Label
    summary: str  # what happened, for the people who subscribe (English, one line)
    public: tuple[str, ...] = ()
    private: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.name


CATALOG: dict[str, EventType] = {entry.name: entry for entry in (
    EventType("opened", OpenedData(), Label("Reporte recibido", "Report received"),
              "A citizen's report was received through some channel and got its folio.",
              public=("channel",)),
    EventType("triaged", TriagedData(), Label("Reporte clasificado", "Report classified"),
              "A supervisor set the report's department, priority and service.",
              public=("department",)),
    EventType("assigned", AssignedData(), Label("Asignado a una cuadrilla", "Assigned to a crew"),
              "A supervisor assigned a crew (again, if another crew had it).",
              public=("crew_id",)),
    EventType("crew_dispatched", FieldStepData(), Label("La cuadrilla salió", "The crew set out"),
              "The assigned crew set out for the site."),
    EventType("crew_en_route", CrewEnRouteData(),
              Label("La cuadrilla va en camino", "The crew is on its way"),
              "The crew is driving to the site, and may say when it expects to arrive.",
              public=("eta",)),
    EventType("crew_arrived", FieldStepData(), Label("La cuadrilla llegó", "The crew arrived"),
              "The crew reached the site."),
    EventType("photo_added", PhotoAddedData(), Label("Foto agregada", "Photo added"),
              "A photo of the problem or of the work (before, during, after).",
              public=("url", "caption", "stage")),
    EventType("materials_logged", MaterialsLoggedData(),
              Label("Materiales registrados", "Materials logged"),
              "The crew logged the materials it used.", public=("items",)),
    EventType("work_completed", WorkCompletedData(), Label("Trabajo terminado", "Work completed"),
              "The crew finished its work on site."),
    EventType("closed", ClosedData(), Label("Reporte cerrado", "Report closed"),
              "A supervisor closed the report with an honest resolution.",
              public=("resolution",)),
    EventType("reopened", ReopenedData(), Label("Reporte reabierto", "Report reopened"),
              "A supervisor reopened a closed report; it loses its crew and resolution."),
    EventType("marked_duplicate", MarkedDuplicateData(),
              Label("Marcado como duplicado", "Marked as a duplicate"),
              "The report is closed as a duplicate of another folio.",
              public=("duplicate_of",)),
    EventType("comment_added", CommentAddedData(), Label("Comentario", "Comment"),
              "Someone commented; each audience sees only the comments meant for it.",
              public=("text",)),
    EventType("citizen_confirmed", CitizenFeedbackData(),
              Label("El ciudadano confirmó la solución", "The citizen confirmed the fix"),
              "The citizen says the finished work really fixed the problem.",
              private=("comment",)),
    EventType("citizen_disputed", CitizenFeedbackData(),
              Label("El ciudadano indicó que no quedó resuelto",
                    "The citizen said it is not fixed"),
              "The citizen says the finished work did not fix the problem.",
              private=("comment",)),
)}

SCHEMAS: dict[str, type[Schema]] = {name: type(entry.schema) for name, entry in CATALOG.items()}
EVENT_TYPES = tuple(entry.type for entry in CATALOG.values())


def event_type(name: str) -> str:
    """`crew_arrived` -> `mx.expediente.report.crew_arrived`."""
    if name not in CATALOG:
        raise KeyError(f"unknown report event {name!r}")
    return TYPE_PREFIX + name


def short_name(type_: str) -> str:
    """`mx.expediente.report.crew_arrived` -> `crew_arrived`."""
    if not type_.startswith(TYPE_PREFIX):
        raise KeyError(f"not a report event type: {type_!r}")
    return type_[len(TYPE_PREFIX):]


def label(name: str, language: str = "es") -> str:
    """The citizen-facing label of an event type: label('crew_arrived', 'en')."""
    text: str = getattr(CATALOG[name].label, language)
    return text


def dump_data(name: str, data: dict[str, Any], *, validate: bool = False) -> dict[str, Any]:
    """Serialise an event's data through its schema: only the schema's fields go out, formatted
    as the schema says. `validate=True` also loads the result back through the schema and raises
    ValidationError on a contract break; the publisher's contract tests do that for every event
    type, so the relay does not pay for it on every event."""
    schema = CATALOG[name].schema
    dumped: dict[str, Any] = schema.dump(data)
    if validate:
        errors = schema.validate(dumped)
        if errors:
            raise ValidationError(errors)
    return dumped


def load_data(name: str, data: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = CATALOG[name].schema.load(data)
    return loaded
