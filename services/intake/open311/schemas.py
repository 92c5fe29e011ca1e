"""Open311 GeoReport v2's arguments and JSON documents as marshmallow schemas, for the OpenAPI
document (shared/chassis/openapi.py); format.py reads the arguments, documents.py writes the
documents (the XML says the same)."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate

from shared.contracts.fields import Line, Text

from ..schemas import maybe


def argument(**kwargs: Any) -> Line:
    """An Open311 argument: one line of at most 4,000 characters (open311/format.py)."""
    return Line(4000, **kwargs)


class GeoReportScopeSchema(Schema):
    jurisdiction_id = argument(metadata={"description": "Ours, or none (one is served)."})


class GeoReportRequestsQuerySchema(GeoReportScopeSchema):
    service_request_id = argument(metadata={"description": "Folios, comma separated."})
    service_code = argument()
    status = argument(metadata={"description": "open, closed or both, comma separated."})
    start_date = argument(metadata={"description": "W3C date-time with its offset."})
    end_date = argument(metadata={"description": "At most 90 days after start_date."})
    # Whole numbers, but an empty argument is one not given, and service_request_id overrides
    # every other argument (GeoReport v2).
    page_size = argument(metadata={"description": "1 to 1000 (default 50)."})
    page = argument(metadata={"description": "From 1."})
    extensions = argument(metadata={"description": "false leaves extended_attributes out."})


class GeoReportUpdatesQuerySchema(GeoReportScopeSchema):
    start_date = argument()
    end_date = argument()
    service_code = argument()
    page_size = argument(metadata={"description": "1 to 1000 (default 50)."})


class GeoReportFormSchema(GeoReportScopeSchema):
    """POST requests: a location (lat and long, address_string or address_id), the service's
    answers as `attribute[<code>]`, and optional contact details."""

    class Meta:
        unknown = INCLUDE

    api_key = argument()
    service_code = argument()
    lat = argument()
    long = argument()
    address_id = argument()
    email = argument()
    phone = argument()
    first_name = argument()
    last_name = argument()
    device_id = argument()
    account_id = argument()
    media_url = argument()
    address_string = Text(4000)
    description = Text(4000)


class GeoReportEndpointSchema(Schema):
    specification = fields.String(required=True)
    url = fields.String(required=True)
    changeset = fields.String(required=True)
    type = fields.String(required=True)
    formats = fields.List(fields.String(), required=True)


class GeoReportDiscoverySchema(Schema):
    changeset = fields.String(required=True)
    contact = fields.String(required=True)
    key_service = fields.String(required=True)
    endpoints = fields.List(fields.Nested(GeoReportEndpointSchema), required=True)


class GeoReportServiceSchema(Schema):
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    description = maybe()
    metadata = fields.Boolean(required=True)
    type = fields.String(required=True)
    keywords = maybe()
    group = fields.String(required=True)


class GeoReportValueSchema(Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)


class GeoReportAttributeSchema(Schema):
    variable = fields.Boolean(required=True)
    code = fields.String(required=True)
    datatype = fields.String(required=True)
    required = fields.Boolean(required=True)
    datatype_description = maybe()
    order = fields.Integer(required=True)
    description = fields.String(required=True)
    values = fields.List(fields.Nested(GeoReportValueSchema), required=True)


class GeoReportDefinitionSchema(Schema):
    service_code = fields.String(required=True)
    attributes = fields.List(fields.Nested(GeoReportAttributeSchema), required=True)


class GeoReportReceiptSchema(Schema):
    service_request_id = fields.String(required=True)
    token = fields.String(required=True)
    service_notice = maybe()
    account_id = maybe()


class GeoReportExtendedSchema(Schema):
    external_status_code = maybe()
    step_label = maybe()
    resolution = maybe()
    resolution_label = maybe()
    closed_datetime = maybe(fields.DateTime)


class GeoReportRequestSchema(Schema):
    service_request_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("open", "closed")))
    status_notes = maybe()
    service_name = maybe()
    service_code = maybe()
    description = maybe()
    agency_responsible = maybe()
    service_notice = maybe()
    address = maybe()
    address_id = maybe()
    zipcode = maybe()
    media_url = maybe()
    requested_datetime = maybe(fields.DateTime)
    updated_datetime = maybe(fields.DateTime)
    expected_datetime = maybe(fields.DateTime)
    lat = maybe(fields.Float)
    long = maybe(fields.Float)
    extended_attributes = fields.Nested(GeoReportExtendedSchema)


class GeoReportTokenSchema(Schema):
    service_request_id = maybe()
    token = fields.String(required=True)


class GeoReportUpdateSchema(Schema):
    update_id = fields.String(required=True)
    service_request_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("open", "closed")))
    updated_datetime = fields.DateTime(required=True)
    description = maybe()
    media_url = maybe()
    external_status_code = fields.String()


class GeoReportErrorSchema(Schema):
    code = fields.Integer(required=True)
    description = fields.String(required=True)
