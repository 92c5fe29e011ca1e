"""Open311 shapes of a report, built from its public renderings only (no personal data, no
private or internal notes), as shared/contracts/open311.py names their fields."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.contracts.events import RESOLUTION_LABELS, STEP_LABELS
from shared.contracts.lifecycle import FIRST_STEP, STATUS, closing_events, step_after
from shared.contracts.open311 import REQUEST_FIELDS

from .timeline import render_timeline, shown_fields

CLOSINGS = closing_events()
NOTE_FIELDS = ("resolution_label", "caption", "text", "notes")
Keyed = tuple[str, str, int, str, dict[str, Any]]  # (at, folio, version, step, public item)


def open311_request(row: Mapping[str, Any]) -> dict[str, Any]:
    """One report for GET requests, from OPEN311_COLUMNS, photos and (maybe) the timeline."""
    media = json.loads(row["media_urls"]) or [p["url"] for p in json.loads(row["photos"] or "[]")]
    step_label = STEP_LABELS.get(row["step"], row["step"])
    resolution_label = RESOLUTION_LABELS.get(row["resolution"] or "")
    details = []
    if row["status"] == "closed":
        details = [resolution_label or ""]
        if row["duplicate_of"]:
            details.append(f"folio original {row['duplicate_of']}")
        if row["timeline"]:
            entries = [e for e in json.loads(row["timeline"]) if e["type"] in CLOSINGS]
            closing = (render_timeline(entries, "public") or [{}])[-1]
            details += [str(closing[field]) for field in closing_extras() if closing.get(field)]
    found = {**row, "step_label": step_label, "resolution_label": resolution_label,
             "media_url": media[0] if media else None, "status_notes": _note(step_label, details)}
    return {field: found[field] for field in REQUEST_FIELDS}


def public_entries(folio: str, entries: Sequence[dict[str, Any]],
                   after: str) -> list[Keyed]:
    """A report's public timeline entries after `after`, keyed (at, folio, version) to sort,
    with the report's step as of each."""
    step = FIRST_STEP
    found: list[Keyed] = []
    for stored in entries:
        step = step_after(step, stored["type"])
        if stored["at"] > after:
            found.extend((item["at"], folio, stored["version"], step, item)
                         for item in render_timeline([stored], "public"))  # none if not public
    return found


def open311_update(keyed: Keyed) -> dict[str, Any]:
    """One servicerequestupdates entry, from a public timeline item."""
    at, folio, version, step, item = keyed
    return {
        "update_id": f"{folio}-{version}",
        "service_request_id": folio,
        "status": STATUS[step],
        "external_status_code": step,
        "updated_datetime": at,
        "description": _note(item["label"], _details(item)),
        "media_url": item.get("url") if item["type"] == "photo_added" else None,
    }


def closing_extras() -> list[str]:
    """What a closing shows in public beyond the row's resolution and duplicate_of (nothing
    today; close notes, should they be made public): only then is the timeline worth reading."""
    shown = {field for name in CLOSINGS for field in shown_fields(name, "public")}
    return sorted(shown - {"resolution", "resolution_label", "duplicate_of"})


def first_entries(limit: int, kept: list[Keyed], found: list[Keyed]) -> list[Keyed]:
    """The `limit` earliest of two lists of keyed updates, in order."""
    return sorted([*kept, *found], key=lambda k: k[:3])[:limit]


def _details(item: Mapping[str, Any]) -> list[str]:
    details = [str(item[field]) for field in NOTE_FIELDS if item.get(field)]
    if item.get("duplicate_of"):
        details.append(f"folio original {item['duplicate_of']}")
    return details


def _note(label: str, details: Sequence[str]) -> str:
    details = [d for d in details if d]
    return f"{label}: {'; '.join(details)}" if details else label
