"""TrackingApplication: the report use cases. It knows nothing of nameko, kombu or HTTP."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import JSONTranscoder, RecordConflictError, Transcoding

from shared.chassis.groupcommit import GroupCommit
from shared.chassis.sqlstore import SqlStore

from ..domainmodel import Actor, InvalidCommand, Report, is_folio, report_id
from .folios import FolioAllocator

MAX_CONFLICT_RETRIES = 8
# A check on the report as loaded, before the command (the caller's scope: services/tracking/
# access.py). It raises to refuse; run in every attempt, it sees what a rival writer saved.
Guard = Callable[[Report], None]


class ReportNotFound(LookupError):
    """No report has this folio."""


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, Any]:
        return obj.as_dict()

    def decode(self, data: dict[str, Any]) -> Actor:
        return Actor(**data)


@dataclass(frozen=True)
class OpenedReport:
    folio: str
    access_token: str
    opened_at: datetime
    due_at: datetime | None
    version: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TrackingApplication(Application[UUID]):
    """Opens reports, moves them through their lifecycle, answers what a report looks like now."""

    name = "tracking"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.sql = SqlStore.from_env(dict(self.construct_env(self.name, env)), name=self.name)
        with self.sql.library_schema_lock():  # replicas starting together: one creates tables
            super().__init__(env)
        self.folios = FolioAllocator(
            self.sql,
            prefix=self.env.get("FOLIO_PREFIX", "QRO") or "QRO",
            timezone=self.env.get("TIMEZONE", "America/Mexico_City") or "America/Mexico_City",
            block_size=int(self.env.get("FOLIO_BLOCK_SIZE", "10") or 10),
        )
        self.group_commit = GroupCommit(self.save)
        self.saved_listeners: list[Callable[[], None]] = []

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(ActorAsDict())

    def _notify(self, recordings: list[Any]) -> None:
        # Wakes the outbox relay and the projector at once, instead of waiting for their poll.
        for listener in self.saved_listeners:
            listener()

    # ---- opening -----------------------------------------------------------------------------

    def open_report(
        self,
        *,
        service_code: str,
        service_name: str,
        department: str,
        description: str,
        location: dict[str, Any],
        attributes: dict[str, Any] | None = None,
        media_urls: list[str] | None = None,
        sla_hours: float | None = None,
        actor: Actor,
        request_key: str | None = None,
        access_token: str | None = None,
    ) -> OpenedReport:
        """Allocate a folio and open the report's stream; the citizen gets folio and access token.

        A caller that may send the same open again (after a timeout, a crash) names it with a
        `request_key` and brings the citizen's `access_token`: every retry then answers with the
        one report the first attempt opened, or opens it if that attempt never saved.

        Example: open_report(service_code="bache", service_name="Bache", department="obras",
        description="Bache profundo", location={"lat": 20.59, "long": -100.39}, actor=...)"""
        if not (location.get("lat") is not None and location.get("long") is not None) and not (
            location.get("address") or location.get("address_id")
        ):
            raise InvalidCommand("a report needs coordinates or an address")
        if (request_key is None) != (access_token is None):
            raise InvalidCommand("a request key and an access token come together")
        folio = (self.folios.folio_for_request(f"{actor.id}|{request_key}") if request_key
                 else self.folios.next_folio())
        token = access_token or secrets.token_urlsafe(18)
        now = datetime.now().astimezone()
        due_at = now + timedelta(hours=sla_hours) if sla_hours else None
        report = Report(
            folio=folio,
            service_code=service_code,
            service_name=service_name,
            department=department,
            description=description,
            location=dict(location),
            attributes=dict(attributes or {}),
            media_urls=list(media_urls or []),
            due_at=due_at,
            access_token_hash=hash_token(token),
            actor=actor,
        )
        try:
            self.group_commit.save(report)
        except RecordConflictError:
            if request_key is None:
                raise
            return self._opened_before(folio, token)
        return OpenedReport(folio, token, report.created_on, due_at, report.version)

    def _opened_before(self, folio: str, access_token: str) -> OpenedReport:
        """A retried open whose first attempt saved: that report, if the token is the same."""
        report = self.get_report(folio)
        if not hmac.compare_digest(report.access_token_hash, hash_token(access_token)):
            raise InvalidCommand("this request key already opened a report with another token")
        return OpenedReport(folio, access_token, report.created_on, report.due_at, report.version)

    # ---- lifecycle: every command takes the client's key, `step_id`, and the caller's scope,
    # `guard` (see _change) ------------------------------------------------------------------

    def triage(self, folio: str, actor: Actor, *, department: str, priority: str,
               service_code: str, step_id: str | None = None,
               guard: Guard | None = None) -> Report:
        return self._change(
            folio, lambda r: r.triage(actor, department, priority, service_code, step_id),
            step_id, guard)

    def assign(self, folio: str, actor: Actor, *, crew_id: str, step_id: str | None = None,
               guard: Guard | None = None) -> Report:
        return self._change(folio, lambda r: r.assign(actor, crew_id, step_id), step_id, guard)

    def dispatch_crew(self, folio: str, actor: Actor, *, step_id: str | None = None,
                      occurred_at: datetime | None = None, guard: Guard | None = None) -> Report:
        return self._change(folio, lambda r: r.dispatch_crew(actor, step_id, occurred_at),
                            step_id, guard)

    def set_en_route(self, folio: str, actor: Actor, *, step_id: str | None = None,
                     occurred_at: datetime | None = None, eta: datetime | None = None,
                     guard: Guard | None = None) -> Report:
        """The crew is on its way, and maybe says when it expects to arrive (`eta`)."""
        return self._change(folio, lambda r: r.set_en_route(actor, step_id, occurred_at, eta),
                            step_id, guard)

    def arrive(self, folio: str, actor: Actor, *, step_id: str | None = None,
               occurred_at: datetime | None = None, guard: Guard | None = None) -> Report:
        return self._change(folio, lambda r: r.arrive(actor, step_id, occurred_at), step_id,
                            guard)

    def add_photo(self, folio: str, actor: Actor, *, url: str, caption: str = "",
                  stage: str = "during", step_id: str | None = None,
                  occurred_at: datetime | None = None, guard: Guard | None = None) -> Report:
        return self._change(
            folio, lambda r: r.add_photo(actor, url, caption, stage, step_id, occurred_at),
            step_id, guard)

    def log_materials(self, folio: str, actor: Actor, *, items: list[dict[str, Any]],
                      step_id: str | None = None, occurred_at: datetime | None = None,
                      guard: Guard | None = None) -> Report:
        return self._change(
            folio, lambda r: r.log_materials(actor, items, step_id, occurred_at), step_id, guard)

    def complete_work(self, folio: str, actor: Actor, *, notes: str = "",
                      step_id: str | None = None, occurred_at: datetime | None = None,
                      guard: Guard | None = None) -> Report:
        return self._change(
            folio, lambda r: r.complete_work(actor, notes, step_id, occurred_at), step_id, guard)

    def close_report(self, folio: str, actor: Actor, *, resolution: str, notes: str = "",
                     step_id: str | None = None, guard: Guard | None = None) -> Report:
        return self._change(folio, lambda r: r.close(actor, resolution, notes, step_id),
                            step_id, guard)

    def reopen(self, folio: str, actor: Actor, *, reason: str, step_id: str | None = None,
               guard: Guard | None = None) -> Report:
        return self._change(folio, lambda r: r.reopen(actor, reason, step_id), step_id, guard)

    def mark_duplicate(self, folio: str, actor: Actor, *, duplicate_of: str,
                       step_id: str | None = None, guard: Guard | None = None) -> Report:
        self.get_report(duplicate_of)  # the original must exist
        return self._change(folio, lambda r: r.mark_duplicate(actor, duplicate_of, step_id),
                            step_id, guard)

    def add_comment(self, folio: str, actor: Actor, *, text: str, visibility: str = "public",
                    step_id: str | None = None, guard: Guard | None = None) -> Report:
        return self._change(folio, lambda r: r.add_comment(actor, text, visibility, step_id),
                            step_id, guard)

    def citizen_confirm(self, folio: str, access_token: str, *, comment: str = "",
                        channel: str = "web", step_id: str | None = None) -> Report:
        actor = self.citizen(folio, access_token, channel)
        return self._change(folio, lambda r: r.citizen_confirm(actor, comment, step_id), step_id)

    def citizen_dispute(self, folio: str, access_token: str, *, comment: str,
                        channel: str = "web", step_id: str | None = None) -> Report:
        actor = self.citizen(folio, access_token, channel)
        return self._change(folio, lambda r: r.citizen_dispute(actor, comment, step_id), step_id)

    # ---- queries -----------------------------------------------------------------------------

    def get_report(self, folio: str) -> Report:
        if not is_folio(folio):  # a NUL or a stray character never reaches the store
            raise ReportNotFound(folio)
        try:
            return self.repository.get(report_id(folio))
        except AggregateNotFoundError:
            raise ReportNotFound(folio) from None

    def check_access_token(self, folio: str, access_token: str) -> bool:
        report = self.get_report(folio)
        return hmac.compare_digest(report.access_token_hash, hash_token(access_token or ""))

    def citizen(self, folio: str, access_token: str, channel: str) -> Actor:
        """The citizen who holds this report's access token, as an actor (no personal data)."""
        if not self.check_access_token(folio, access_token):
            raise PermissionError("the access token does not open this report")
        return Actor(id=f"citizen:{folio}", role="citizen", channel=channel)

    def history(self, folio: str, after_version: int = 0) -> list[Any]:
        """The events of the report's stream after `after_version`, oldest first."""
        events = list(self.events.get(report_id(folio), gt=after_version or None))
        if not events:
            self.get_report(folio)  # ReportNotFound for a folio never issued
        return events

    # ---- plumbing ----------------------------------------------------------------------------

    def _change(self, folio: str, command: Callable[[Report], None],
                step_id: str | None = None, guard: Guard | None = None) -> Report:
        """Load, check, command, save; a version conflict (another writer won) retries on fresh
        state, checks included. `guard` refuses a caller out of scope on the report as loaded:
        a report triaged to another department between two attempts is seen and refused.
        A command already applied (the same client key, `step_id`) records nothing and answers
        the report as it is: a client that lost the first answer may send the command again."""
        for _ in range(MAX_CONFLICT_RETRIES):
            report = self.get_report(folio)
            if guard is not None:
                guard(report)  # before the replay answer: out of scope learns nothing
            if report.has_step(step_id):
                return report
            command(report)
            try:
                self.group_commit.save(report)
            except RecordConflictError:
                continue
            return report
        raise RecordConflictError(f"report {folio} is too busy; try again")

    def close(self) -> None:
        """Release the stores (not a use case: closing a report is `close_report`)."""
        super().close()
        self.sql.close()
