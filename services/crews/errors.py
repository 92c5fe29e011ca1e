"""Crews' errors as wire codes, in one table for its RPC replies and its HTTP answers."""

from __future__ import annotations

from eventsourcing.persistence import RecordConflictError

from shared.chassis.errortable import BASE
from shared.chassis.http import json_errors
from shared.contracts.errors import WireError

from .application import AlreadyExists, CrewNotFound, MaterialNotFound
from .domainmodel import CrewsError, InvalidCommand
from .worklists import JobNotFound


def refused(exc: CrewsError) -> WireError:
    """A rule of crews or materials: the message says which."""
    return WireError("domain_error", str(exc), {"_command": [str(exc)]})


def invalid(exc: InvalidCommand) -> WireError:
    return WireError("invalid_command", str(exc), {"_command": [str(exc)]})


def missing(exc: LookupError) -> WireError:
    return WireError("not_found", str(exc), {"code": [str(exc)]})


def taken(exc: AlreadyExists) -> WireError:
    return WireError("already_exists", str(exc), {"code": [str(exc)]})


ERRORS = BASE.extend({
    InvalidCommand: invalid,
    CrewsError: refused,
    CrewNotFound: missing,
    MaterialNotFound: missing,
    JobNotFound: missing,
    AlreadyExists: taken,
    RecordConflictError: "version_conflict",
})
http_errors = json_errors(ERRORS)
