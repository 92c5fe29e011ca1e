"""A report's view, without I/O: how events shape its row, its Spanish labels and timeline,
and what each audience (public, private, staff) may read of it.

Timeline entries are stored whole (actor, notes, every comment) so that staff can see everything;
what a citizen sees is built from a whitelist per event type, so a new field on an event stays
private until someone decides it is public. The access token hash is never copied into a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.contracts.events import CATALOG, RESOLUTION_LABELS, STEP_LABELS
from shared.contracts.lifecycle import FIRST_STEP, STATUS, step_after

# Which comments each audience reads; the others are left out of its timeline altogether.
# A crew reads its own jobs as staff do, without the internal notes (docs/access.md).
COMMENT_AUDIENCES = {
    "public": ("public",),
    "private": ("public", "private"),
    "crew": ("public", "private"),
    "staff": ("public", "private", "internal"),
}
STAFF_AUDIENCES = ("staff", "crew")
# unit_cost and cost: the catalog price crews put on an entry (absent on older entries).
MATERIAL_FIELDS = ("code", "quantity", "unit", "description", "unit_cost", "cost")
# Data every event carries, which an entry keeps in its own way (actor, at) or not at all.
_COMMON_FIELDS = frozenset(("folio", "version", "actor", "occurred_at"))
# The row keeps what `opened` says; its entry only the channel it came by.
_OPENED_ENTRY = ("channel",)


def iso(value: datetime | None) -> str | None:
    """A fixed-width UTC ISO 8601 string: it sorts as text, so SQL compares dates portably.
    A time beyond what UTC can hold (year 1 at +14:00, a device's clock gone wild) is clamped
    to the first or last representable instant: never an error."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = (datetime.min if value.year == datetime.min.year else datetime.max).replace(
            tzinfo=UTC)
    return value.isoformat(timespec="microseconds")


def material_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: item.get(key) for key in MATERIAL_FIELDS} for item in items]


_ENTRY_FIELDS: dict[str, tuple[str, ...]] = {}


def entry_fields(name: str) -> tuple[str, ...]:
    """The data fields an event type contributes to its stored entry: its catalog schema's own
    (opened: only its channel). Worked out once per event type: a rebuild asks for every event."""
    fields = _ENTRY_FIELDS.get(name)
    if fields is None:
        schema_fields = CATALOG[name].schema.fields
        fields = _OPENED_ENTRY if name == "opened" else tuple(
            field for field in schema_fields if field not in _COMMON_FIELDS)
        _ENTRY_FIELDS[name] = fields
    return fields


def shown_fields(name: str, audience: str) -> tuple[str, ...]:
    """What an entry shows to `audience` ('public' or 'private') beyond type, label, time and
    role: the catalog's public fields (the token holder's too), and a resolution's label."""
    entry = CATALOG[name]
    fields = entry.public + entry.private if audience == "private" else entry.public
    return (*fields, "resolution_label") if "resolution" in fields else fields


def timeline_entry(name: str, event: Any) -> dict[str, Any]:
    """The stored timeline entry of one domain event (everything staff may need)."""
    occurred_at = getattr(event, "occurred_at", None)
    recorded_at = iso(event.timestamp)
    actor = event.actor
    stored: dict[str, Any] = {
        "type": name,
        "version": event.originator_version,
        "at": iso(occurred_at) if occurred_at else recorded_at,
        "recorded_at": recorded_at,
        "actor": {"id": actor.id, "role": actor.role, "channel": actor.channel,
                  "crew_id": actor.crew_id},
    }
    if name == "opened":
        stored["channel"] = actor.channel
    else:
        for field in entry_fields(name):
            value = getattr(event, field, None)  # older events may lack newer fields
            # A moment (a crew's eta) is kept as `at` is: UTC, so the page shows it in city time.
            stored[field] = iso(value) if isinstance(value, datetime) else value
    if name == "materials_logged":
        stored["items"] = material_items(event.items)
    if name == "marked_duplicate":
        stored["resolution"] = "duplicate"
    if "resolution" in stored:
        stored["resolution_label"] = RESOLUTION_LABELS.get(stored["resolution"])
    return stored


def reads(entry: Mapping[str, Any], audience: str) -> bool:
    """Whether `audience` reads this timeline entry at all (a comment meant for others: no)."""
    return (entry["type"] != "comment_added"
            or entry.get("visibility") in COMMENT_AUDIENCES[audience])


def render_timeline(entries: list[dict[str, Any]], audience: str) -> list[dict[str, Any]]:
    """The timeline as `audience` ('public', 'private', 'crew' or 'staff') may read it, oldest
    first."""
    shown = []
    for stored in entries:
        name = stored["type"]
        if not reads(stored, audience):
            continue
        label = CATALOG[name].label.es
        if audience in STAFF_AUDIENCES:
            shown.append({**stored, "label": label, "actor_role": stored["actor"]["role"]})
            continue
        item = {
            "type": name,
            "label": label,
            "at": stored["at"],
            "actor_role": stored["actor"]["role"],
        }
        item.update({field: stored.get(field) for field in shown_fields(name, audience)})
        shown.append(item)
    return shown


# ---- the row: the read model's own state machine -------------------------------------------
#
# A row is kept in its stored form: the JSON columns stay JSON text, and an event appends to the
# timeline, photos and materials without decoding and re-encoding what is already there. That
# keeps a rebuild's cost per event flat, however long a report's timeline grows.


def to_json(value: Any) -> str:
    """Compact JSON text, as json.dumps(separators=(",", ":"), ensure_ascii=False) writes it;
    orjson writes it several times faster, and a rebuild writes every row's JSON."""
    return orjson.dumps(value).decode()


def append_json(array: str, *items: Any) -> str:
    """`array` (a JSON array as text, written by to_json) with `items` added at its end."""
    if not items:
        return array
    added = ",".join(to_json(item) for item in items)
    return f"[{added}]" if array == "[]" else f"{array[:-1]},{added}]"


def new_row(event: Any) -> dict[str, Any]:
    location = dict(event.location)
    return {
        "folio": event.folio, "report_id": str(event.originator_id),
        "service_code": event.service_code, "service_name": event.service_name,
        "status": STATUS[FIRST_STEP], "step": FIRST_STEP, "department": event.department,
        "crew_id": None, "channel": event.actor.channel, "priority": "normal", "resolution": None,
        "duplicate_of": None, "citizen_feedback": None, "opened_at": iso(event.timestamp),
        "updated_at": iso(event.timestamp), "closed_at": None, "due_at": iso(event.due_at),
        "lat": location.get("lat"), "long": location.get("long"),
        "address": location.get("address"), "description": event.description, "version": 0,
        "location": to_json(location), "attributes": to_json(dict(event.attributes)),
        "media_urls": to_json(list(event.media_urls)), "timeline": "[]", "photos": "[]",
        "materials": "[]",
    }


def evolve(row: dict[str, Any], name: str, event: Any) -> None:
    """Apply one event to a report's stored view row. Step and status follow the domain's
    lifecycle (step_after); the rest copies what the event says into the row's columns."""
    entry = timeline_entry(name, event)
    at = entry["recorded_at"]
    row["timeline"] = append_json(row["timeline"], entry)
    row["version"] = event.originator_version
    row["updated_at"] = at
    row["step"] = step = step_after(row["step"], name)
    row["status"] = STATUS[step]
    if name == "triaged":
        row.update(department=event.department, priority=event.priority,
                   service_code=event.service_code)
    elif name == "assigned":
        row["crew_id"] = event.crew_id
    elif name == "photo_added":
        photo = {"url": event.url, "caption": event.caption, "stage": event.stage,
                 "at": entry["at"]}
        row["photos"] = append_json(row["photos"], photo)
    elif name == "materials_logged":
        items = ({**item, "at": entry["at"]} for item in entry["items"])
        row["materials"] = append_json(row["materials"], *items)
    elif name == "closed":
        row.update(closed_at=at, resolution=event.resolution, citizen_feedback=None)
    elif name == "marked_duplicate":
        row.update(closed_at=at, resolution="duplicate", duplicate_of=event.duplicate_of)
    elif name == "reopened":
        row.update(closed_at=None, resolution=None, duplicate_of=None, crew_id=None,
                   citizen_feedback=None)
    elif name in ("citizen_confirmed", "citizen_disputed"):
        row["citizen_feedback"] = name.removeprefix("citizen_")


# ---- the views ----------------------------------------------------------------------------------


# These read a row whose JSON columns were decoded.


def labels(row: Mapping[str, Any]) -> dict[str, str | None]:
    return {"step_label": STEP_LABELS.get(row["step"]),
            "resolution_label": RESOLUTION_LABELS.get(row["resolution"] or "")}


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """A search result: the row's indexed columns and their labels."""
    return {**row, **labels(row)}


def citizen_view(row: Mapping[str, Any], audience: str = "public") -> dict[str, Any]:
    """The status page's data; `audience` 'private' adds what the access token opens."""
    return {
        "folio": row["folio"],
        "service": {"code": row["service_code"], "name": row["service_name"]},
        "status": row["status"],
        "step": row["step"],
        "department": row["department"],
        "opened_at": row["opened_at"],
        "updated_at": row["updated_at"],
        "due_at": row["due_at"],
        "closed_at": row["closed_at"],
        "resolution": row["resolution"],
        "duplicate_of": row["duplicate_of"],
        **labels(row),
        "location": {"lat": row["lat"], "long": row["long"], "address": row["address"]},
        "description": row["description"],
        "media_urls": row["media_urls"],
        "photos": row["photos"],
        "materials": row["materials"],
        "timeline": render_timeline(row["timeline"], audience),
    }


def staff_view(row: Mapping[str, Any], audience: str = "staff") -> dict[str, Any]:
    """Everything in the row: actors, internal notes, priority, attributes, the full location;
    audience 'crew' leaves the internal notes out."""
    view = citizen_view(row, audience)
    view.update({key: row[key] for key in (
        "report_id", "crew_id", "channel", "priority", "citizen_feedback", "version",
        "attributes", "location")})
    return view


def narrowed(view: dict[str, Any], audience: str) -> dict[str, Any]:
    """A staff view (audience 'staff') as `audience` ('staff' or 'crew') may read it."""
    if audience not in STAFF_AUDIENCES:
        raise ValueError(f"a staff view is for staff or crew, not {audience!r}")
    return {**view, "timeline": [entry for entry in view["timeline"] if reads(entry, audience)]}
