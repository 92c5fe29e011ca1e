"""Tracking's errors as wire codes, in one table for its RPC replies and its HTTP answers."""

from __future__ import annotations

from eventsourcing.persistence import RecordConflictError

from shared.chassis.errortable import BASE
from shared.chassis.http import json_errors
from shared.contracts.errors import WireError

from .domainmodel import DomainError
from .write.application import ReportNotFound


def domain_error(exc: DomainError) -> WireError:
    """The lifecycle's refusal, with the domain's own code (`report_closed`, …)."""
    return WireError(exc.code, str(exc) or None, {"report": [str(exc) or exc.code]})


def report_not_found(exc: ReportNotFound) -> WireError:
    message = f"no report has folio {exc.args[0]}" if exc.args else "no such report"
    return WireError("not_found", message, {"folio": [message]})


def wrong_access_token(exc: PermissionError) -> WireError:
    message = str(exc) or "the access token does not open this report"
    return WireError("forbidden", message, {"access_token": [message]})


def unknown_command(exc: KeyError) -> WireError:
    """run_command's "unknown command 'x'"; any other KeyError's key is not for the caller."""
    said = exc.args[0] if exc.args else None
    message = said if isinstance(said, str) and said.startswith("unknown ") else "not found"
    return WireError("not_found", message, {"command": [message]})


ERRORS = BASE.extend({
    DomainError: domain_error,
    ReportNotFound: report_not_found,
    RecordConflictError: "version_conflict",
    PermissionError: wrong_access_token,
    KeyError: unknown_command,
})
http_errors = json_errors(ERRORS)
