"""Marshmallow schemas of crews' HTTP doors: what each body and query accepts, and the answers.

Text goes through the edge's fields (shared/contracts/fields.py); amounts are decimal strings,
never floats; times carry their zone. A field nobody declared is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from marshmallow import Schema, fields, validate

from shared.contracts.fields import (
    Line,
    QueryDateTime,
    RecentDateTime,
    Text,
    TimeWindow,
    finite,
    one_of,
    pattern,
)

from .domainmodel import CODE, UNITS

# When a device says something happened: within OCCURRED_AT_MAX_AGE_DAYS of now (configure()).
OCCURRED_AT = TimeWindow()
CODE_PATTERN = pattern(CODE.pattern, "2 to 20 capital letters, digits or hyphens (e.g. C-07)")
AMOUNT = pattern(r"^\d{1,9}(\.\d{1,6})?$", "a decimal amount written as a string, e.g. \"12.50\"")


def configure(config: Mapping[str, Any]) -> None:
    """Take the edge's settings from the service's configuration."""
    days = config.get("OCCURRED_AT_MAX_AGE_DAYS")
    if days not in (None, ""):
        OCCURRED_AT.past = timedelta(days=float(days))


# ---- crews ---------------------------------------------------------------------------------

class NewCrewSchema(Schema):
    code = Line(20, required=True, validate=CODE_PATTERN)
    name = Line(80, required=True, strip=True, min_length=1)
    department = Line(64, required=True, strip=True, min_length=1)


class MemberSchema(Schema):
    member_id = Line(64, required=True, strip=True, min_length=1)
    name = Line(120, required=True, strip=True, min_length=1)


class ShiftSchema(Schema):
    action = one_of(("start", "end"), required=True)
    at = RecentDateTime(OCCURRED_AT, load_default=None)


class AvailabilitySchema(Schema):
    availability = one_of(("available", "busy"), required=True)


class PositionSchema(Schema):
    lat = finite(required=True, validate=validate.Range(-90, 90))
    long = finite(required=True, validate=validate.Range(-180, 180))
    at = RecentDateTime(OCCURRED_AT, load_default=None)


class CrewsQuerySchema(Schema):
    department = Line(64, load_default=None)


class MemberAnswer(Schema):
    member_id = fields.String(required=True)
    name = fields.String(required=True)


class PositionAnswer(Schema):
    lat = fields.Float(required=True)
    long = fields.Float(required=True)
    at = fields.String(required=True)


class CrewAnswer(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    department = fields.String(required=True)
    availability = fields.String(required=True, validate=validate.OneOf(
        ("available", "busy", "off_shift")))
    on_shift = fields.Boolean(required=True)
    members = fields.List(fields.Nested(MemberAnswer), required=True)
    position = fields.Nested(PositionAnswer, allow_none=True, required=True)
    version = fields.Integer(required=True)


class CrewsAnswer(Schema):
    crews = fields.List(fields.Nested(CrewAnswer), required=True)


# ---- materials -----------------------------------------------------------------------------

class NewMaterialSchema(Schema):
    code = Line(20, required=True, validate=CODE_PATTERN)
    description = Text(200, required=True, strip=True, min_length=1)
    unit = one_of(UNITS, required=True)
    unit_cost = Line(20, required=True, validate=AMOUNT)
    effective_at = QueryDateTime(load_default=None)


class PriceSchema(Schema):
    unit_cost = Line(20, required=True, validate=AMOUNT)
    effective_at = QueryDateTime(required=True)


class CostQuerySchema(Schema):
    quantity = Line(20, required=True, validate=AMOUNT)
    at = QueryDateTime(load_default=None)


class PriceAnswer(Schema):
    effective_at = fields.String(required=True)
    unit_cost = fields.String(required=True)


class MaterialAnswer(Schema):
    code = fields.String(required=True)
    description = fields.String(required=True)
    unit = fields.String(required=True)
    prices = fields.List(fields.Nested(PriceAnswer), required=True)
    version = fields.Integer(required=True)


class MaterialsAnswer(Schema):
    materials = fields.List(fields.Nested(MaterialAnswer), required=True)


class CostAnswer(Schema):
    code = fields.String(required=True)
    description = fields.String(required=True)
    unit = fields.String(required=True)
    quantity = fields.String(required=True)
    unit_cost = fields.String(required=True)
    cost = fields.String(required=True)
    priced_at = fields.String(required=True)
