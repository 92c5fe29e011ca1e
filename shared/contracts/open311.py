"""The rows tracking's Open311 view answers intake (`open311_requests`, `open311_updates` RPCs):
their fields, named once for both sides. Times are UTC ISO 8601 text; intake writes them in the
jurisdiction's time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

STATUSES = ("open", "closed")  # Open311's own: the crew's step goes in the extended fields


def _iso(value: str) -> None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValidationError("an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValidationError("an ISO 8601 timestamp with its offset")


def _moment(**kwargs: Any) -> fields.String:
    return fields.String(validate=_iso, **kwargs)


class Open311Request(Schema):
    """One report for GET requests: public facts only."""

    folio = fields.String(required=True)
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    step = fields.String(required=True)  # -> extended external_status_code
    step_label = fields.String(required=True, allow_none=True)
    resolution = fields.String(required=True, allow_none=True)
    resolution_label = fields.String(required=True, allow_none=True)
    department = fields.String(required=True)  # -> agency_responsible
    description = fields.String(required=True)
    address = fields.String(required=True, allow_none=True)
    lat = fields.Float(required=True, allow_none=True)
    long = fields.Float(required=True, allow_none=True)
    opened_at = _moment(required=True)  # -> requested_datetime
    updated_at = _moment(required=True)
    due_at = _moment(required=True, allow_none=True)  # -> expected_datetime
    closed_at = _moment(required=True, allow_none=True)
    media_url = fields.String(required=True, allow_none=True)
    status_notes = fields.String(required=True)


class Open311Update(Schema):
    """One servicerequestupdates entry: a public timeline entry, with the report's status and
    step as of it."""

    update_id = fields.String(required=True)  # folio-version: stable across reads
    service_request_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    external_status_code = fields.String(required=True)  # the step
    updated_datetime = _moment(required=True)
    description = fields.String(required=True)
    media_url = fields.String(required=True, allow_none=True)


REQUEST_FIELDS = tuple(Open311Request._declared_fields)
UPDATE_FIELDS = tuple(Open311Update._declared_fields)
