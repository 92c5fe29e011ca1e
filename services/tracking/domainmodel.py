"""The Report aggregate: one citizen report, its lifecycle rules and its events (no I/O here)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from shared.contracts.lifecycle import FIRST_STEP, STATUS, rule, step_after

REPORT_NAMESPACE = UUID("6f1c2a0e-3d4b-5e6f-8a9b-0c1d2e3f4a5b")

RESOLUTIONS = (
    "fixed",
    "not_fixed",
    "duplicate",
    "not_our_responsibility",
    "no_action_needed",
    "cancelled",
)
COMMENT_VISIBILITIES = ("public", "private", "internal")
CHANNELS = ("web", "chatbot", "app", "phone_070", "window", "open311", "field", "staff", "system")
ROLES = ("citizen", "operator", "supervisor", "crew", "billing_clerk", "admin", "auditor", "system")
STAFF_OVERRIDE_ROLES = ("supervisor", "admin")

FOLIO_PATTERN = re.compile(r"^[A-Z]{2,6}-\d{4}-\d{6,}$")


def is_folio(text: str) -> bool:
    """True for a folio's whole shape (`QRO-2026-000123`; no trailing newline, no NUL)."""
    return isinstance(text, str) and FOLIO_PATTERN.fullmatch(text) is not None


class DomainError(Exception):
    """A command that the report's lifecycle does not allow."""

    code = "domain_error"


class InvalidTransition(DomainError):
    code = "invalid_transition"


class ReportClosed(DomainError):
    code = "report_closed"


class NotAssignedCrew(DomainError):
    code = "not_assigned_crew"


class InvalidCommand(DomainError):
    code = "invalid_command"


@dataclass(frozen=True)
class Actor:
    """Who did something, in which role, through which channel."""

    id: str
    role: str
    channel: str
    crew_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def report_id(folio: str) -> UUID:
    """The aggregate id is derived from the folio, so a folio finds its stream without an index."""
    return uuid5(REPORT_NAMESPACE, folio)


def format_folio(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year:04d}-{sequence:06d}"


# ---- the lifecycle: the one state machine the aggregate, the views and Open311 all read ------
# It is part of the wire (shared/contracts/lifecycle.py): crews' work lists follow it too.

@cache
def event_name(class_name: str) -> str:
    """The one rule from an event class to its wire name: `CrewDispatched` -> `crew_dispatched`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def wire_name(domain_event: Any) -> str:
    """The snake_case, past-tense name an event has on the wire (`crew_arrived`)."""
    return event_name(type(domain_event).__name__)


class Report(Aggregate):
    """A citizen's report, from opened to closed; every step is an event in its own stream.

    A command checks the report's rules, then records one event. Every command takes the client's
    key for it (`step_id`, optional): a command whose key the report already holds was applied
    before, and the application answers the report as it is instead of recording it again.
    """

    class Event(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            """What every event does besides its own method: it moves the report along the
            LIFECYCLE, and the report remembers the client's key that came with it."""
            aggregate.step = step_after(aggregate.step, event_name(type(self).__name__))
            step_id = getattr(self, "step_id", None)  # events stored before keys had none
            if step_id is not None:
                aggregate.step_ids.add(step_id)

    @staticmethod
    def create_id(folio: str, **_: Any) -> UUID:
        return report_id(folio)

    @event("Opened")
    def __init__(
        self,
        folio: str,
        service_code: str,
        service_name: str,
        department: str,
        description: str,
        location: dict[str, Any],
        attributes: dict[str, Any],
        media_urls: list[str],
        due_at: datetime | None,
        access_token_hash: str,
        actor: Actor,
    ) -> None:
        self.folio = folio
        self.service_code = service_code
        self.service_name = service_name
        self.department = department
        self.description = description
        self.location = location
        self.attributes = attributes
        self.media_urls = list(media_urls)
        self.due_at = due_at
        self.access_token_hash = access_token_hash
        self.channel = actor.channel
        self.priority = "normal"
        self.step = FIRST_STEP
        self.crew_id: str | None = None
        self.resolution: str | None = None
        self.duplicate_of: str | None = None
        self.citizen_feedback: str | None = None
        self.step_ids: set[str] = set()
        self.photos: list[dict[str, Any]] = []
        self.materials: list[dict[str, Any]] = []

    # ---- queries -----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return STATUS[self.step]

    @property
    def is_closed(self) -> bool:
        return self.status == "closed"

    def has_step(self, step_id: str | None) -> bool:
        """True when a command with this client key was already applied."""
        return step_id is not None and step_id in self.step_ids

    # ---- triage and assignment (supervisors) -------------------------------------------------

    def triage(self, actor: Actor, department: str, priority: str, service_code: str,
               step_id: str | None = None) -> None:
        self._require("triaged", "triage")
        if priority not in ("low", "normal", "high", "urgent"):
            raise InvalidCommand(f"unknown priority {priority!r}")
        self._triaged(actor=actor, department=department, priority=priority,
                      service_code=service_code, step_id=step_id)

    @event("Triaged")
    def _triaged(self, actor: Actor, department: str, priority: str, service_code: str,
                 step_id: str | None = None) -> None:
        self.department = department
        self.priority = priority
        self.service_code = service_code

    def assign(self, actor: Actor, crew_id: str, step_id: str | None = None) -> None:
        self._require("assigned", "assign a crew")
        if not crew_id:
            raise InvalidCommand("crew_id is required")
        self._assigned(actor=actor, crew_id=crew_id, step_id=step_id)

    @event("Assigned")
    def _assigned(self, actor: Actor, crew_id: str, step_id: str | None = None) -> None:
        self.crew_id = crew_id

    # ---- field steps (the assigned crew, or a supervisor overriding) -------------------------

    def dispatch_crew(
        self, actor: Actor, step_id: str | None, occurred_at: datetime | None
    ) -> None:
        self._require_field_step(actor, "crew_dispatched", "dispatch the crew", occurred_at)
        self._crew_dispatched(actor=actor, step_id=step_id, occurred_at=occurred_at)

    @event("CrewDispatched")
    def _crew_dispatched(self, actor: Actor, step_id: str | None,
                         occurred_at: datetime | None) -> None:
        pass

    def set_en_route(self, actor: Actor, step_id: str | None, occurred_at: datetime | None,
                     eta: datetime | None = None) -> None:
        """The crew is on its way; `eta` is when it expects to arrive (citizens are told)."""
        self._require_field_step(actor, "crew_en_route", "set the crew en route", occurred_at)
        problem = eta_problem(eta, occurred_at)
        if problem:
            raise InvalidCommand(problem)
        self._crew_en_route(actor=actor, step_id=step_id, occurred_at=occurred_at, eta=eta)

    @event("CrewEnRoute")
    def _crew_en_route(self, actor: Actor, step_id: str | None, occurred_at: datetime | None,
                       eta: datetime | None = None) -> None:
        pass  # eta's default: the events stored before a crew could say it have none

    def arrive(self, actor: Actor, step_id: str | None, occurred_at: datetime | None) -> None:
        self._require_field_step(actor, "crew_arrived", "mark arrival", occurred_at)
        self._crew_arrived(actor=actor, step_id=step_id, occurred_at=occurred_at)

    @event("CrewArrived")
    def _crew_arrived(self, actor: Actor, step_id: str | None,
                      occurred_at: datetime | None) -> None:
        pass

    def add_photo(self, actor: Actor, url: str, caption: str, stage: str, step_id: str | None,
                  occurred_at: datetime | None) -> None:
        """The crew documents its work; staff and the person reporting may add photos too."""
        self._require_open()
        if actor.role == "crew":
            self._require_field_actor(actor)
        self._require("photo_added", "add a photo")
        if stage not in ("report", "before", "during", "after"):
            raise InvalidCommand(f"unknown photo stage {stage!r}")
        if not url:
            raise InvalidCommand("a photo needs its url")
        self._require_after_opening(occurred_at)
        self._photo_added(actor=actor, url=url, caption=caption, stage=stage, step_id=step_id,
                          occurred_at=occurred_at)

    @event("PhotoAdded")
    def _photo_added(self, actor: Actor, url: str, caption: str, stage: str,
                     step_id: str | None, occurred_at: datetime | None) -> None:
        self.photos.append({"url": url, "caption": caption, "stage": stage})

    def log_materials(self, actor: Actor, items: list[dict[str, Any]], step_id: str | None,
                      occurred_at: datetime | None) -> None:
        self._require_field_step(actor, "materials_logged", "log materials", occurred_at)
        if not items:
            raise InvalidCommand("at least one material is required")
        for item in items:
            if not item.get("code") or float(item.get("quantity", 0)) <= 0:
                raise InvalidCommand("each material needs a code and a positive quantity")
        self._materials_logged(actor=actor, items=items, step_id=step_id, occurred_at=occurred_at)

    @event("MaterialsLogged")
    def _materials_logged(self, actor: Actor, items: list[dict[str, Any]], step_id: str | None,
                          occurred_at: datetime | None) -> None:
        self.materials.extend(items)

    def complete_work(self, actor: Actor, notes: str, step_id: str | None,
                      occurred_at: datetime | None) -> None:
        self._require_field_step(actor, "work_completed", "complete the work", occurred_at)
        self._work_completed(actor=actor, notes=notes, step_id=step_id, occurred_at=occurred_at)

    @event("WorkCompleted")
    def _work_completed(self, actor: Actor, notes: str, step_id: str | None,
                        occurred_at: datetime | None) -> None:
        pass

    # ---- closing, reopening, duplicates ------------------------------------------------------

    def close(self, actor: Actor, resolution: str, notes: str,
              step_id: str | None = None) -> None:
        self._require("closed", "close")
        if resolution not in RESOLUTIONS:
            raise InvalidCommand(f"unknown resolution {resolution!r}")
        if resolution == "duplicate":
            raise InvalidCommand("use mark_duplicate to close a report as a duplicate")
        self._closed(actor=actor, resolution=resolution, notes=notes, step_id=step_id)

    @event("Closed")
    def _closed(self, actor: Actor, resolution: str, notes: str,
                step_id: str | None = None) -> None:
        self.resolution = resolution
        self.citizen_feedback = None

    def reopen(self, actor: Actor, reason: str, step_id: str | None = None) -> None:
        self._require("reopened", "reopen")
        if not reason.strip():
            raise InvalidCommand("a reason is required to reopen a report")
        self._reopened(actor=actor, reason=reason, step_id=step_id)

    @event("Reopened")
    def _reopened(self, actor: Actor, reason: str, step_id: str | None = None) -> None:
        self.resolution = None
        self.duplicate_of = None
        self.crew_id = None
        self.citizen_feedback = None

    def mark_duplicate(self, actor: Actor, duplicate_of: str, step_id: str | None = None) -> None:
        self._require("marked_duplicate", "mark it a duplicate")
        if duplicate_of == self.folio:
            raise InvalidCommand("a report cannot be a duplicate of itself")
        if not FOLIO_PATTERN.match(duplicate_of or ""):
            raise InvalidCommand(f"{duplicate_of!r} is not a folio")
        self._marked_duplicate(actor=actor, duplicate_of=duplicate_of, step_id=step_id)

    @event("MarkedDuplicate")
    def _marked_duplicate(self, actor: Actor, duplicate_of: str,
                          step_id: str | None = None) -> None:
        self.resolution = "duplicate"
        self.duplicate_of = duplicate_of

    # ---- comments and the citizen's word -----------------------------------------------------

    def add_comment(self, actor: Actor, text: str, visibility: str,
                    step_id: str | None = None) -> None:
        self._require("comment_added", "comment")
        if visibility not in COMMENT_VISIBILITIES:
            raise InvalidCommand(f"unknown visibility {visibility!r}")
        if actor.role == "citizen" and visibility == "internal":
            raise InvalidCommand("citizens cannot write internal notes")
        if not text.strip():
            raise InvalidCommand("a comment needs text")
        self._comment_added(actor=actor, text=text, visibility=visibility, step_id=step_id)

    @event("CommentAdded")
    def _comment_added(self, actor: Actor, text: str, visibility: str,
                       step_id: str | None = None) -> None:
        pass

    def citizen_confirm(self, actor: Actor, comment: str, step_id: str | None = None) -> None:
        self._require_feedback_allowed("citizen_confirmed", "confirm")
        self._citizen_confirmed(actor=actor, comment=comment, step_id=step_id)

    @event("CitizenConfirmed")
    def _citizen_confirmed(self, actor: Actor, comment: str, step_id: str | None = None) -> None:
        self.citizen_feedback = "confirmed"

    def citizen_dispute(self, actor: Actor, comment: str, step_id: str | None = None) -> None:
        self._require_feedback_allowed("citizen_disputed", "dispute")
        if not comment.strip():
            raise InvalidCommand("tell us what is still wrong")
        self._citizen_disputed(actor=actor, comment=comment, step_id=step_id)

    @event("CitizenDisputed")
    def _citizen_disputed(self, actor: Actor, comment: str, step_id: str | None = None) -> None:
        self.citizen_feedback = "disputed"

    # ---- rules ---------------------------------------------------------------------------------

    def _require(self, name: str, action: str) -> None:
        """The LIFECYCLE allows recording `name` in the report's step."""
        allowed = rule(name).allowed_in
        if self.step in allowed:
            return
        self._require_open()
        raise InvalidTransition(
            f"cannot {action} while the report is {self.step} (needs {' or '.join(allowed)})")

    def _require_open(self) -> None:
        if self.is_closed:
            raise ReportClosed(f"report {self.folio} is closed")

    def _require_field_step(self, actor: Actor, name: str, action: str,
                            occurred_at: datetime | None) -> None:
        self._require_field_actor(actor)
        self._require(name, action)
        self._require_after_opening(occurred_at)

    def _require_field_actor(self, actor: Actor) -> None:
        self._require_open()
        if actor.role in STAFF_OVERRIDE_ROLES:
            return
        if actor.role != "crew":
            raise NotAssignedCrew(f"a {actor.role} cannot move a crew's field steps")
        if self.crew_id is None or actor.crew_id != self.crew_id:
            raise NotAssignedCrew(f"crew {actor.crew_id} is not assigned to {self.folio}")

    def _require_after_opening(self, occurred_at: datetime | None) -> None:
        """A step synced late keeps when it happened, which is never before the report opened."""
        if occurred_at is None:
            return
        if occurred_at.tzinfo is None:
            raise InvalidCommand("occurred_at needs its time zone")
        if occurred_at < self.created_on:
            raise InvalidCommand(
                f"occurred_at {occurred_at.isoformat()} is before the report was opened "
                f"({self.created_on.isoformat()})")

    def _require_feedback_allowed(self, name: str, action: str) -> None:
        self._require(name, action)
        if self.resolution == "duplicate":
            raise InvalidTransition("a duplicate is followed on its original folio")
        if self.citizen_feedback is not None:
            raise InvalidTransition("the citizen already gave their word on this work")


# ---- a crew's expected arrival --------------------------------------------------------------

ETA_HORIZON_HOURS = 24  # a crew that sets out today arrives today or tomorrow, not next week


def eta_problem(eta: datetime | None, since: datetime | None) -> str | None:
    """Why a crew's expected arrival cannot be, or None: it has its time zone, comes after the
    moment the crew set out (`since`, else now) and within ETA_HORIZON_HOURS of it. The edge's
    schema asks the same (a field message on `eta`); the report refuses what slips past it."""
    if eta is None:
        return None
    if eta.tzinfo is None:
        return "eta needs its time zone"
    start = since or datetime.now(eta.tzinfo)
    hours = (eta - start).total_seconds() / 3600
    if hours <= 0:
        return f"eta {eta.isoformat()} is not after the crew set out ({start.isoformat()})"
    if hours > ETA_HORIZON_HOURS:
        return (f"eta {eta.isoformat()} is more than {ETA_HORIZON_HOURS} hours after the crew "
                f"set out ({start.isoformat()})")
    return None


# Every event the report records, by class name; the wire names follow from event_name.
EVENT_NAMES: dict[str, str] = {
    cls.__name__: event_name(cls.__name__) for cls in vars(Report).values()
    if isinstance(cls, type) and issubclass(cls, Report.Event)
    and cls not in (Report.Event, Report.Created)
}
