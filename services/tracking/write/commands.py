"""The command table: for each staff command, its schema, who may run it and the use case it calls.

RPC and HTTP both go through `execute`, so validation, authorisation (roles here, scopes in
access.py, checked on the loaded report) and actor recording are the same whichever door a
command comes in by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, ValidationError

from .. import access, schemas
from ..domainmodel import Actor, Report
from .application import TrackingApplication

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

FIELD = ("crew", "supervisor")


@dataclass(frozen=True)
class Command:
    schema: Schema
    roles: tuple[str, ...]
    use_case: str


COMMANDS: dict[str, Command] = {
    "triage": Command(schemas.TriageSchema(), ("supervisor",), "triage"),
    "assign": Command(schemas.AssignSchema(), ("supervisor",), "assign"),
    "dispatch_crew": Command(schemas.FieldStepSchema(), FIELD, "dispatch_crew"),
    "set_en_route": Command(schemas.EnRouteSchema(), FIELD, "set_en_route"),
    "arrive": Command(schemas.FieldStepSchema(), FIELD, "arrive"),
    "add_photo": Command(schemas.PhotoSchema(), (*FIELD, "operator", "system"), "add_photo"),
    "log_materials": Command(schemas.MaterialsSchema(), FIELD, "log_materials"),
    "complete_work": Command(schemas.CompleteWorkSchema(), FIELD, "complete_work"),
    "close_report": Command(schemas.CloseSchema(), ("supervisor",), "close_report"),
    "reopen": Command(schemas.ReopenSchema(), ("supervisor",), "reopen"),
    "mark_duplicate": Command(schemas.MarkDuplicateSchema(), ("supervisor", "operator"),
                              "mark_duplicate"),
    "add_comment": Command(schemas.CommentSchema(), ("operator", "supervisor", "crew", "system"),
                           "add_comment"),
}
OPEN_ROLES = access.OPEN_ROLES

DEFAULT_CHANNEL = {"crew": "field", "system": "system"}
IDEMPOTENCY_HEADER = "Idempotency-Key"


def actor_for(principal: Any, allowed: tuple[str, ...], channel: str | None) -> Actor:
    """The actor a command records: the principal in the first allowed role it holds."""
    role = next((r for r in allowed if r in principal.roles), "admin")
    return Actor(
        id=principal.subject,
        role=role,
        channel=channel or DEFAULT_CHANNEL.get(role, "staff"),
        crew_id=principal.crew_id,
    )


def execute(app: TrackingApplication, auth: Any, name: str, folio: str,
            payload: dict[str, Any]) -> Report:
    """Check the role (401/403), validate the payload (400), run the use case with the caller's
    scope as its guard: the department in the token, a crew's own jobs (403)."""
    command = COMMANDS[name]
    principal = auth.require(*command.roles)
    data = command.schema.load(payload or {})
    if "visibility" in data:
        access.check_note(principal, data["visibility"])
    actor = actor_for(principal, command.roles, data.pop("channel", None))
    guard = access.guard(principal, command.roles)
    return getattr(app, command.use_case)(folio, actor, guard=guard, **data)


PRICE_FIELDS = ("unit_cost", "cost")


def unpriced(name: str, payload: Any) -> Any:
    """An HTTP command's payload, refused if it prices materials: prices come from crews' catalog
    over the internal bus (RPC), never from a client at the public door."""
    items = payload.get("items") if name == "log_materials" and isinstance(payload, dict) else None
    if isinstance(items, list) and any(isinstance(item, dict) and
                                       any(f in item for f in PRICE_FIELDS) for item in items):
        raise ValidationError({"items": [
            "unit_cost and cost are set by crews' materials catalog, not by a client"]})
    return payload


def keyed(payload: dict[str, Any], headers: Mapping[str, str] | Headers) -> dict[str, Any]:
    """An HTTP command's payload with the client's key: the body's `step_id`, or else the
    `Idempotency-Key` header (the schema then checks it like any step_id).

    Example: POST /reports/QRO-2026-000123/assign, Idempotency-Key: 5f0c…, {"crew_id": "C-07"}
    sent twice assigns once; the second answer is the report as it stands."""
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is None or not isinstance(payload, dict) or payload.get("step_id") is not None:
        return payload
    return {**payload, "step_id": key}


def state(report: Report) -> dict[str, Any]:
    """What a command answers: where the report stands now."""
    return {
        "folio": report.folio,
        "version": report.version,
        "step": report.step,
        "status": report.status,
        "crew_id": report.crew_id,
        "resolution": report.resolution,
        "duplicate_of": report.duplicate_of,
        "department": report.department,
    }
