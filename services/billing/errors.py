"""Billing's errors as wire codes, in one table for its RPC replies and its HTTP answers."""

from __future__ import annotations

from eventsourcing.persistence import RecordConflictError

from shared.chassis.errortable import BASE
from shared.chassis.http import json_errors
from shared.contracts.errors import WireError

from .application import AccountNotFound, AlreadyExists
from .domainmodel import (
    BillingError,
    InvalidCommand,
    NothingOwed,
    NotReversible,
    ReferenceReused,
)
from .provider import PaymentProviderError
from .rules import NotInRules, RulesError


def refused(exc: Exception, code: str = "domain_error") -> WireError:
    """A rule of billing: the message says which."""
    return WireError(code, str(exc), {"_command": [str(exc)]})


def missing(exc: LookupError) -> WireError:
    return WireError("not_found", str(exc), {"account": [str(exc)]})


ERRORS = BASE.extend({
    BillingError: refused,
    InvalidCommand: lambda exc: refused(exc, "invalid_command"),
    RulesError: lambda exc: refused(exc, "invalid_command"),
    NotInRules: lambda exc: refused(exc, "invalid_command"),  # an offence, a discount reason
    NothingOwed: lambda exc: refused(exc, "nothing_owed"),
    ReferenceReused: lambda exc: refused(exc, "reference_reused"),
    NotReversible: lambda exc: refused(exc, "not_reversible"),
    AccountNotFound: missing,
    AlreadyExists: lambda exc: WireError("already_exists", str(exc), {"key": [str(exc)]}),
    PaymentProviderError: lambda exc: WireError("bad_gateway", str(exc)),
    RecordConflictError: "version_conflict",
})
http_errors = json_errors(ERRORS)
html_errors = json_errors(ERRORS, html_page=True)
