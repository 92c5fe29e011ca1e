"""Open311 GeoReport v2 documents: the catalog and tracking's rows shaped as the spec's
documents, written as XML (with the declaration, UTF-8) or JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from shared.contracts.open311 import REQUEST_FIELDS, UPDATE_FIELDS

from ..catalog import ServiceDefinition
from .format import ITEM_TAGS, SPECIFICATION, XML_DECLARATION, XML_INVALID

# ---- the documents -----------------------------------------------------------------------------


def w3c(value: datetime | str | None, tz: tzinfo) -> str | None:
    """A datetime in the jurisdiction's local time, with its offset: 2026-03-01T09:30:00-06:00."""
    if value is None or value == "":
        return None
    return _aware(value).astimezone(tz).replace(microsecond=0).isoformat()


def _aware(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def discovery_document(settings: Any, changeset: str) -> dict[str, Any]:
    """`settings` has the endpoint's public `url`, `contact` and `key_service` texts."""
    return {"changeset": changeset, "contact": settings.contact,
            "key_service": settings.key_service,
            "endpoints": [{"specification": SPECIFICATION, "url": settings.url,
                           "changeset": changeset, "type": "production",
                           "formats": ["text/xml", "application/json"]}]}


def service_entry(definition: ServiceDefinition) -> dict[str, Any]:
    return {"service_code": definition.code, "service_name": definition.name,
            "description": definition.description or None,
            "metadata": bool(definition.questions), "type": "realtime",
            "keywords": ", ".join(definition.keywords) or None, "group": definition.group}


def definition_document(definition: ServiceDefinition) -> dict[str, Any]:
    return {"service_code": definition.code, "attributes": [
        {"variable": q.variable, "code": q.code, "datatype": q.datatype, "required": q.required,
         "datatype_description": q.datatype_description or None, "order": q.order,
         "description": q.description,
         "values": [{"key": key, "name": name} for key, name in q.values]}
        for q in sorted(definition.questions, key=lambda q: q.order)]}


def service_notice(definition: ServiceDefinition | None) -> str | None:
    if definition is None or not definition.sla_hours:
        return None
    return f"{definition.name}: se atiende en un plazo de {definition.sla_hours:g} horas."


def receipt_document(receipt: Mapping[str, Any], notice: str | None) -> list[dict[str, Any]]:
    """POST's answer: the folio right away (and the token, which also finds it), never the
    citizen's access token."""
    return [{"service_request_id": str(receipt["folio"]), "token": str(receipt["token"]),
             "service_notice": notice, "account_id": None}]


def token_document(token: str, folio: str | None) -> list[dict[str, Any]]:
    return [{"service_request_id": None if folio is None else str(folio), "token": token}]


def contract_row(row: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A row from tracking with exactly the contract's fields (shared/contracts/open311.py):
    one a tracking of another version lacks reads as None, one it adds is not read."""
    return {name: row.get(name) for name in names}


def request_document(row: Mapping[str, Any], tz: tzinfo, notice: str | None,
                     extensions: bool = True) -> dict[str, Any]:
    """One row of tracking's Open311 view (an Open311Request) as a spec `request`. Tracking
    keeps no address id or zip code: the spec's fields for them stay empty."""
    row = contract_row(row, REQUEST_FIELDS)
    document = {
        "service_request_id": str(row["folio"]), "status": row.get("status"),
        "status_notes": row.get("status_notes"), "service_name": row.get("service_name"),
        "service_code": row.get("service_code"), "description": row.get("description"),
        "agency_responsible": row.get("department"), "service_notice": notice,
        "requested_datetime": w3c(row.get("opened_at"), tz),
        "updated_datetime": w3c(row.get("updated_at"), tz),
        "expected_datetime": w3c(row.get("due_at"), tz),
        "address": row.get("address"), "address_id": None, "zipcode": None,
        "lat": row.get("lat"), "long": row.get("long"),
        "media_url": row.get("media_url"),
    }
    if extensions:
        document["extended_attributes"] = {
            "external_status_code": row.get("step"), "step_label": row.get("step_label"),
            "resolution": row.get("resolution"), "resolution_label": row.get("resolution_label"),
            "closed_datetime": w3c(row.get("closed_at"), tz)}
    return document


def updates_document(rows: list[Mapping[str, Any]], tz: tzinfo, end: datetime | None
                     ) -> list[dict[str, Any]]:
    """tracking's open311_updates rows (Open311Update) as `request_update`s, up to `end` if
    given."""
    found = []
    for row in (contract_row(given, UPDATE_FIELDS) for given in rows):
        moment = _aware(row["updated_datetime"])
        if end is not None and moment > end:
            continue
        update = {"update_id": str(row["update_id"]),
                  "service_request_id": str(row["service_request_id"]),
                  "status": row.get("status"), "updated_datetime": w3c(moment, tz),
                  "description": row.get("description"), "media_url": row.get("media_url")}
        if row.get("external_status_code") is not None:
            update["external_status_code"] = row["external_status_code"]
        found.append(update)
    return found


# ---- writing -----------------------------------------------------------------------------------


def render(fmt: str, root: str, data: Any) -> bytes:
    """The document as UTF-8 JSON, or as XML under `root` (lists get ITEM_TAGS children)."""
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    return to_xml(root, data)


def to_xml(root: str, data: Any) -> bytes:
    element = ET.Element(root)
    _fill(element, root, data)
    ET.indent(element)
    return XML_DECLARATION + ET.tostring(element, encoding="unicode").encode("utf-8")


def _fill(element: ET.Element, tag: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), key, item)
    elif isinstance(value, list | tuple):
        child = ITEM_TAGS.get(tag, "item")
        for item in value:
            _fill(ET.SubElement(element, child), child, item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = XML_INVALID.sub("", str(value))  # characters XML 1.0 cannot carry
