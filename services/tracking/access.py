"""Who may read and act on which report: the roles of each door and the scopes a token carries
(its department, its crew), as docs/access.md sets them out.

Roles say what a principal may do at all; scopes say on which reports. A token that names a
department reaches only that department's reports, whatever role it acts in. A principal that
qualifies for a door only as `crew` reaches only the reports assigned to its crew. Admin has no
scope. Writes check the scope on the report they change, inside the application's
load-check-save (`guard`), so a report triaged away meanwhile is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shared.chassis.auth import Forbidden, Principal

from .domainmodel import NotAssignedCrew, Report
from .read.timeline import narrowed

OPEN_ROLES = ("operator", "supervisor", "system")
STAFF_VIEW_ROLES = ("operator", "supervisor", "crew", "auditor")
SEARCH_ROLES = ("operator", "supervisor", "crew", "auditor", "billing_clerk")
EVENTS_ROLES = ("operator", "supervisor", "crew", "auditor", "system")
# Internal notes are read, and so written, by these (and admin); a crew reads its own reports
# without them.
NOTE_READERS = ("operator", "supervisor", "auditor")

Guard = Callable[[Report], None]


def crew_only(principal: Principal, roles: Iterable[str]) -> bool:
    """True when the principal qualifies for a door with `roles` only as crew."""
    roles = tuple(roles)
    qualifying = {role for role in principal.roles if role in roles}
    return "admin" not in principal.roles and qualifying <= {"crew"}


def scoped(principal: Principal, roles: Iterable[str]) -> bool:
    """True when the principal reaches only some reports through this door."""
    if "admin" in principal.roles:
        return False
    return bool(principal.department) or crew_only(principal, roles)


def check_scope(principal: Principal, roles: Iterable[str], folio: str, department: str | None,
                crew_id: str | None) -> None:
    """Forbidden outside the token's department; NotAssignedCrew (403) for a crew on a report
    assigned to another crew, or to none."""
    if "admin" in principal.roles:
        return
    if principal.department and department != principal.department:
        raise Forbidden(f"report {folio} belongs to {department}, not to your department "
                        f"({principal.department})")
    if crew_only(principal, roles) and (crew_id is None or crew_id != principal.crew_id):
        raise NotAssignedCrew(f"crew {principal.crew_id or 'none'} is not assigned to {folio}")


def guard(principal: Principal, roles: Iterable[str]) -> Guard:
    """The scope check a command runs on the report it loaded, before changing it."""
    roles = tuple(roles)

    def check(report: Report) -> None:
        check_scope(principal, roles, report.folio, report.department, report.crew_id)

    return check


def reads_notes(principal: Principal) -> bool:
    return "admin" in principal.roles or any(r in NOTE_READERS for r in principal.roles)


def check_note(principal: Principal, visibility: str) -> None:
    """An internal note is written only by those who may read internal notes."""
    if visibility == "internal" and not reads_notes(principal):
        raise Forbidden("internal notes are written by operators, supervisors and admins; "
                        "write a public or private comment")


def check_open(principal: Principal, department: str) -> None:
    """A token that names a department opens reports of that department only."""
    if "admin" not in principal.roles and principal.department not in (None, "", department):
        raise Forbidden(f"you open reports of your department ({principal.department}), "
                        f"not of {department}")


def staff_view_for(principal: Principal, view: dict[str, Any]) -> dict[str, Any]:
    """The staff view as this principal may read it: its scope checked on the report, and
    without internal notes for whoever does not read them (a crew on its own job)."""
    check_scope(principal, STAFF_VIEW_ROLES, view["folio"], view["department"], view["crew_id"])
    return narrowed(view, "staff" if reads_notes(principal) else "crew")


def search_filters(principal: Principal, filters: dict[str, Any]) -> dict[str, Any]:
    """A search held to the principal's scope: its department, its crew's jobs. Asking for
    another department's or crew's reports is refused rather than answered empty."""
    if "admin" in principal.roles:
        return filters
    narrowed_to = dict(filters)
    if principal.department:
        narrowed_to["department"] = _own(filters.get("department"), principal.department,
                                         "department")
    if crew_only(principal, SEARCH_ROLES):
        narrowed_to["crew_id"] = _own(filters.get("crew_id"), principal.crew_id or "", "crew")
    return narrowed_to


def _own(asked: str | None, own: str, what: str) -> str:
    if asked not in (None, own):
        raise Forbidden(f"you search your own {what}'s reports ({own or 'none'}), not {asked}'s")
    return own
