"""The Report aggregate: one citizen report, its lifecycle rules and its events (no I/O here)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

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


class Report(Aggregate):
    """A citizen's report, from opened to closed; every step is an event in its own stream."""

    @staticmethod
    def create_id(folio: str, **_: Any) -> UUID:  # type: ignore[override]
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
        self.step = "opened"
        self.crew_id: str | None = None
        self.resolution: str | None = None
        self.duplicate_of: str | None = None
        self.citizen_feedback: str | None = None
        self.step_ids: set[str] = set()
        self.photos: list[dict[str, Any]] = []
        self.materials: list[dict[str, Any]] = []

    # ---- queries -----------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.step == "closed"

    def has_step(self, step_id: str | None) -> bool:
        """True when a field update with this client-generated id was already applied."""
        return step_id is not None and step_id in self.step_ids

    # ---- triage and assignment (supervisors) -------------------------------------------------

    def triage(self, actor: Actor, department: str, priority: str, service_code: str) -> None:
        self._require_open()
        if priority not in ("low", "normal", "high", "urgent"):
            raise InvalidCommand(f"unknown priority {priority!r}")
        self._triaged(
            actor=actor, department=department, priority=priority, service_code=service_code
        )

    @event("Triaged")
    def _triaged(self, actor: Actor, department: str, priority: str, service_code: str) -> None:
        self.department = department
        self.priority = priority
        self.service_code = service_code
        if self.step in ("opened", "reopened"):
            self.step = "triaged"

    def assign(self, actor: Actor, crew_id: str) -> None:
        self._require_open()
        if self.step in ("on_site", "work_completed"):
            raise InvalidTransition("a crew already works on site; it cannot be reassigned now")
        if not crew_id:
            raise InvalidCommand("crew_id is required")
        self._assigned(actor=actor, crew_id=crew_id)

    @event("Assigned")
    def _assigned(self, actor: Actor, crew_id: str) -> None:
        self.crew_id = crew_id
        self.step = "assigned"

    # ---- field steps (the assigned crew, or a supervisor overriding) -------------------------

    def dispatch_crew(
        self, actor: Actor, step_id: str | None, occurred_at: datetime | None
    ) -> None:
        self._require_field_actor(actor)
        self._require_step("dispatch the crew", "assigned")
        self._crew_dispatched(actor=actor, step_id=step_id, occurred_at=occurred_at)

    @event("CrewDispatched")
    def _crew_dispatched(self, actor: Actor, step_id: str | None, occurred_at: datetime | None):
        self._record_step(step_id)
        self.step = "dispatched"

    def set_en_route(self, actor: Actor, step_id: str | None, occurred_at: datetime | None) -> None:
        self._require_field_actor(actor)
        self._require_step("set the crew en route", "dispatched")
        self._crew_en_route(actor=actor, step_id=step_id, occurred_at=occurred_at)

    @event("CrewEnRoute")
    def _crew_en_route(self, actor: Actor, step_id: str | None, occurred_at: datetime | None):
        self._record_step(step_id)
        self.step = "en_route"

    def arrive(self, actor: Actor, step_id: str | None, occurred_at: datetime | None) -> None:
        self._require_field_actor(actor)
        self._require_step("mark arrival", "dispatched", "en_route")
        self._crew_arrived(actor=actor, step_id=step_id, occurred_at=occurred_at)

    @event("CrewArrived")
    def _crew_arrived(self, actor: Actor, step_id: str | None, occurred_at: datetime | None):
        self._record_step(step_id)
        self.step = "on_site"

    def add_photo(
        self,
        actor: Actor,
        url: str,
        caption: str,
        stage: str,
        step_id: str | None,
        occurred_at: datetime | None,
    ) -> None:
        self._require_open()
        if actor.role == "crew":
            self._require_field_actor(actor)
        if stage not in ("report", "before", "during", "after"):
            raise InvalidCommand(f"unknown photo stage {stage!r}")
        if not url:
            raise InvalidCommand("a photo needs its url")
        self._photo_added(
            actor=actor, url=url, caption=caption, stage=stage, step_id=step_id,
            occurred_at=occurred_at,
        )

    @event("PhotoAdded")
    def _photo_added(
        self,
        actor: Actor,
        url: str,
        caption: str,
        stage: str,
        step_id: str | None,
        occurred_at: datetime | None,
    ) -> None:
        self._record_step(step_id)
        self.photos.append({"url": url, "caption": caption, "stage": stage})

    def log_materials(
        self,
        actor: Actor,
        items: list[dict[str, Any]],
        step_id: str | None,
        occurred_at: datetime | None,
    ) -> None:
        self._require_field_actor(actor)
        self._require_step("log materials", "on_site", "work_completed")
        if not items:
            raise InvalidCommand("at least one material is required")
        for item in items:
            if not item.get("code") or float(item.get("quantity", 0)) <= 0:
                raise InvalidCommand("each material needs a code and a positive quantity")
        self._materials_logged(actor=actor, items=items, step_id=step_id, occurred_at=occurred_at)

    @event("MaterialsLogged")
    def _materials_logged(
        self,
        actor: Actor,
        items: list[dict[str, Any]],
        step_id: str | None,
        occurred_at: datetime | None,
    ) -> None:
        self._record_step(step_id)
        self.materials.extend(items)

    def complete_work(
        self, actor: Actor, notes: str, step_id: str | None, occurred_at: datetime | None
    ) -> None:
        self._require_field_actor(actor)
        self._require_step("complete the work", "on_site")
        self._work_completed(actor=actor, notes=notes, step_id=step_id, occurred_at=occurred_at)

    @event("WorkCompleted")
    def _work_completed(
        self, actor: Actor, notes: str, step_id: str | None, occurred_at: datetime | None
    ) -> None:
        self._record_step(step_id)
        self.step = "work_completed"

    # ---- closing, reopening, duplicates ------------------------------------------------------

    def close(self, actor: Actor, resolution: str, notes: str) -> None:
        if self.is_closed:
            raise ReportClosed(f"report {self.folio} is already closed")
        if resolution not in RESOLUTIONS:
            raise InvalidCommand(f"unknown resolution {resolution!r}")
        if resolution == "duplicate":
            raise InvalidCommand("use mark_duplicate to close a report as a duplicate")
        self._closed(actor=actor, resolution=resolution, notes=notes)

    @event("Closed")
    def _closed(self, actor: Actor, resolution: str, notes: str) -> None:
        self.step = "closed"
        self.resolution = resolution
        self.citizen_feedback = None

    def reopen(self, actor: Actor, reason: str) -> None:
        if not self.is_closed:
            raise InvalidTransition(f"report {self.folio} is not closed; only a closed one reopens")
        if not reason.strip():
            raise InvalidCommand("a reason is required to reopen a report")
        self._reopened(actor=actor, reason=reason)

    @event("Reopened")
    def _reopened(self, actor: Actor, reason: str) -> None:
        self.step = "reopened"
        self.resolution = None
        self.duplicate_of = None
        self.crew_id = None
        self.citizen_feedback = None

    def mark_duplicate(self, actor: Actor, duplicate_of: str) -> None:
        self._require_open()
        if duplicate_of == self.folio:
            raise InvalidCommand("a report cannot be a duplicate of itself")
        if not FOLIO_PATTERN.match(duplicate_of or ""):
            raise InvalidCommand(f"{duplicate_of!r} is not a folio")
        self._marked_duplicate(actor=actor, duplicate_of=duplicate_of)

    @event("MarkedDuplicate")
    def _marked_duplicate(self, actor: Actor, duplicate_of: str) -> None:
        self.step = "closed"
        self.resolution = "duplicate"
        self.duplicate_of = duplicate_of

    # ---- comments and the citizen's word -----------------------------------------------------

    def add_comment(self, actor: Actor, text: str, visibility: str) -> None:
        if visibility not in COMMENT_VISIBILITIES:
            raise InvalidCommand(f"unknown visibility {visibility!r}")
        if actor.role == "citizen" and visibility == "internal":
            raise InvalidCommand("citizens cannot write internal notes")
        if not text.strip():
            raise InvalidCommand("a comment needs text")
        self._comment_added(actor=actor, text=text, visibility=visibility)

    @event("CommentAdded")
    def _comment_added(self, actor: Actor, text: str, visibility: str) -> None:
        pass

    def citizen_confirm(self, actor: Actor, comment: str) -> None:
        self._require_feedback_allowed()
        self._citizen_confirmed(actor=actor, comment=comment)

    @event("CitizenConfirmed")
    def _citizen_confirmed(self, actor: Actor, comment: str) -> None:
        self.citizen_feedback = "confirmed"

    def citizen_dispute(self, actor: Actor, comment: str) -> None:
        self._require_feedback_allowed()
        if not comment.strip():
            raise InvalidCommand("tell us what is still wrong")
        self._citizen_disputed(actor=actor, comment=comment)

    @event("CitizenDisputed")
    def _citizen_disputed(self, actor: Actor, comment: str) -> None:
        self.citizen_feedback = "disputed"

    # ---- rules ---------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self.is_closed:
            raise ReportClosed(f"report {self.folio} is closed")

    def _require_step(self, action: str, *allowed: str) -> None:
        self._require_open()
        if self.step not in allowed:
            raise InvalidTransition(
                f"cannot {action} while the report is {self.step} (needs {' or '.join(allowed)})"
            )

    def _require_field_actor(self, actor: Actor) -> None:
        self._require_open()
        if actor.role in STAFF_OVERRIDE_ROLES:
            return
        if actor.role != "crew":
            raise NotAssignedCrew(f"a {actor.role} cannot move a crew's field steps")
        if self.crew_id is None or actor.crew_id != self.crew_id:
            raise NotAssignedCrew(f"crew {actor.crew_id} is not assigned to {self.folio}")

    def _require_feedback_allowed(self) -> None:
        if self.step not in ("closed", "work_completed"):
            raise InvalidTransition("the citizen can confirm or dispute only finished work")
        if self.resolution == "duplicate":
            raise InvalidTransition("a duplicate is followed on its original folio")
        if self.citizen_feedback is not None:
            raise InvalidTransition("the citizen already gave their word on this work")

    def _record_step(self, step_id: str | None) -> None:
        if step_id is not None:
            self.step_ids.add(step_id)


EVENT_NAMES: dict[str, str] = {
    "Opened": "opened",
    "Triaged": "triaged",
    "Assigned": "assigned",
    "CrewDispatched": "crew_dispatched",
    "CrewEnRoute": "crew_en_route",
    "CrewArrived": "crew_arrived",
    "PhotoAdded": "photo_added",
    "MaterialsLogged": "materials_logged",
    "WorkCompleted": "work_completed",
    "Closed": "closed",
    "Reopened": "reopened",
    "MarkedDuplicate": "marked_duplicate",
    "CommentAdded": "comment_added",
    "CitizenConfirmed": "citizen_confirmed",
    "CitizenDisputed": "citizen_disputed",
}


def wire_name(domain_event: Any) -> str:
    """The snake_case, past-tense name an event has on the wire (`crew_arrived`)."""
    return EVENT_NAMES[type(domain_event).__name__]
