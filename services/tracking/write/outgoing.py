"""Turns tracking's stored events into the public CloudEvents that the outbox relay publishes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import UUID, uuid5

from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import CATALOG, dump_data, event_type

from ..domainmodel import Report, wire_name

SOURCE = "/expediente/tracking"


def event_id(originator_id: UUID, version: int) -> str:
    """Stable per stored event, so a re-published event keeps its id and consumers dedupe it."""
    return str(uuid5(originator_id, str(version)))


class FolioCache:
    """originator id -> folio; only `opened` carries the folio, later events find it here."""

    def __init__(self, app: Any, maxsize: int = 100_000) -> None:
        self._app = app
        self._maxsize = maxsize
        self._folios: OrderedDict[UUID, str] = OrderedDict()

    def remember(self, originator_id: UUID, folio: str) -> None:
        self._folios[originator_id] = folio
        self._folios.move_to_end(originator_id)
        if len(self._folios) > self._maxsize:
            self._folios.popitem(last=False)

    def folio(self, originator_id: UUID) -> str:
        folio = self._folios.get(originator_id)
        if folio is None:
            opened = next(iter(self._app.events.get(originator_id, lte=1)))
            folio = opened.folio
            self.remember(originator_id, folio)
        return folio


def event_data(name: str, domain_event: Any, folio: str, validate: bool = False) -> dict[str, Any]:
    """The event's public data: the schema's fields only (no token hash, no private comments)."""
    fields = CATALOG[name].schema.fields
    # An event stored before a field existed (e.g. step_id on staff commands) goes out without it.
    data = {key: getattr(domain_event, key) for key in fields if hasattr(domain_event, key)}
    data.update(
        folio=folio, version=domain_event.originator_version, actor=domain_event.actor.as_dict()
    )
    if name == "opened":
        data["channel"] = domain_event.actor.channel
    if name == "comment_added" and domain_event.visibility != "public":
        data["text"] = None
    return dump_data(name, data, validate=validate)


class CloudEventConverter:
    """Callable for the relay: stored notification -> CloudEvent."""

    def __init__(self, app: Any, validate: bool = False) -> None:
        self._app = app
        self.folios = FolioCache(app)
        self.validate = validate

    def __call__(self, notification: Any) -> CloudEvent:
        domain_event = self._app.mapper.to_domain_event(notification)
        return self.convert(domain_event, sequence=str(notification.id))

    def convert(self, domain_event: Any, sequence: str | None = None) -> CloudEvent:
        """One stored event as published; `sequence` (its position in the application's log)
        is left out when the event is read from its report's stream instead of the log."""
        # Report.Opened is made by eventsourcing from @event("Opened"): mypy cannot see it.
        if isinstance(domain_event, Report.Opened):  # type: ignore[attr-defined]
            self.folios.remember(domain_event.originator_id, domain_event.folio)
        folio = self.folios.folio(domain_event.originator_id)
        name = wire_name(domain_event)
        return CloudEvent(
            id=event_id(domain_event.originator_id, domain_event.originator_version),
            source=SOURCE,
            type=event_type(name),
            subject=folio,
            time=domain_event.timestamp,
            data=event_data(name, domain_event, folio, self.validate),
            sequence=sequence,
            extensions={"streamversion": domain_event.originator_version},
        )
