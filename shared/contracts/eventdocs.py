"""docs/events.md, written from the event catalog (see COMMAND)."""

from __future__ import annotations

import sys
from typing import Any

from marshmallow import fields

from .cloudevents import CONTENT_TYPE, HEADER_PREFIX
from .events import CATALOG, LANGUAGES, RESOLUTIONS, STEPS, TYPE_PREFIX, ReportEventData

COMMAND = "python -m shared.contracts.eventdocs > docs/events.md"
COMMON = tuple(ReportEventData._declared_fields)
KINDS = {fields.String: "text", fields.Integer: "integer", fields.Float: "number",
         fields.AwareDateTime: "timestamp", fields.Date: "date", fields.Dict: "object",
         fields.Boolean: "true/false"}
# The public timeline shows when a step happened, as the crew's app said, not as a detail.
SEEN_AS = {"occurred_at": "everyone, as the step's time"}

INTRO = f"""\
# Report events

<!-- Generated from shared/contracts/events.py by `{COMMAND}`: edit the catalog, not this page
(a unit test fails while the two differ). -->

Tracking publishes every step of a report as a [CloudEvent](https://cloudevents.io) 1.0:
`type` is `{TYPE_PREFIX}<name>`, `subject` the folio, `source` `/expediente/tracking`, and the
`streamversion` extension the event's version in its report's stream (consumers apply a report's
events in that order). On RabbitMQ each goes to the events topic exchange with its `type` as
routing key, in structured mode (`{CONTENT_TYPE}` body) with the RabbitMQ binding's headers:
{", ".join(f"`{HEADER_PREFIX}{a}`" for a in ("id", "source", "specversion", "type", "subject",
                                                "time"))}.

Every event's `data` carries {", ".join(f"`{name}`" for name in COMMON)}: which report, its
version, who did it (`id`, `role`, `channel`, `crew_id`) and the client's key for the command
(absent from events stored before every command took one). **Public** fields are what anyone
reading the folio's status page or Open311 sees of an event; the holder of the report's access
token also sees the **token holder** ones; staff see everything.
"""

OUTRO = f"""\
## Adding an event type

1. One entry in `CATALOG` (`shared/contracts/events.py`): its wire name (snake_case, past
   tense), its data schema, its labels and which fields the public and the token holder see.
2. One command and its event method on `Report` (`services/tracking/domainmodel.py`), the event
   class named as the wire name in CamelCase (`inspection_scheduled` -> `InspectionScheduled`);
   a `LIFECYCLE` rule there if it may happen only in some steps or moves the report to another.
3. `{COMMAND}`

The timeline, the Open311 view and the publisher take the rest from the catalog.
"""


def describe(field: fields.Field[Any]) -> str:
    if isinstance(field, fields.Nested):
        # A Schema class or instance (marshmallow types it loosely): both declare fields.
        nested: Any = field.nested if isinstance(field.nested, type) else type(field.nested)
        return f"object ({', '.join(nested._declared_fields)})"
    if isinstance(field, fields.List):
        return f"list of {describe(field.inner)}"
    kind = next((word for cls, word in KINDS.items() if isinstance(field, cls)), "value")
    return f"{kind} or null" if field.allow_none else kind


def names(found: tuple[str, ...]) -> str:
    return ", ".join(f"`{name}`" for name in found) or "—"


def markdown() -> str:
    parts = [INTRO, "| type | " + " | ".join(LANGUAGES) + " | public | token holder |",
             "| --- | " + " | ".join("---" for _ in LANGUAGES) + " | --- | --- |"]
    for name, entry in CATALOG.items():
        labels = " | ".join(getattr(entry.label, language) for language in LANGUAGES)
        parts.append(f"| [`{name}`](#{name}) | {labels} | {names(entry.public)} | "
                     f"{names(entry.private)} |")
    for name, entry in CATALOG.items():
        parts += ["", f"## {name}", "", f"`{entry.type}`: {entry.summary}", "",
                  "| field | kind | required | seen by |", "| --- | --- | --- | --- |"]
        for field_name, field in entry.schema.fields.items():
            if field_name in COMMON:
                continue
            seen = SEEN_AS.get(field_name) or (
                "everyone" if field_name in entry.public else
                "token holder" if field_name in entry.private else "staff")
            required = "yes" if field.required else "no"
            parts.append(f"| `{field_name}` | {describe(field)} | {required} | {seen} |")
    for title, table in (("Steps", STEPS), ("Resolutions", RESOLUTIONS)):
        parts += ["", f"## {title}", "", "| name | " + " | ".join(LANGUAGES) + " |",
                  "| --- | " + " | ".join("---" for _ in LANGUAGES) + " |"]
        parts += [f"| `{key}` | " + " | ".join(label) + " |" for key, label in table.items()]
    return "\n".join(parts) + "\n\n" + OUTRO


if __name__ == "__main__":
    sys.stdout.write(markdown())
