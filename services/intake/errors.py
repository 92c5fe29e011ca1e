"""Intake's errors as wire codes, in one table for its JSON doors, the portal and Open311.

What tracking refused arrives as a WireError with tracking's code and is answered as it is; a
failure of tracking without a code, or tracking not answering, is `unavailable` (chassis table)."""

from __future__ import annotations

from shared.chassis.errortable import BASE
from shared.chassis.http import json_errors
from shared.contracts.errors import WireError

from .application import IdempotencyKeyReused, SubmissionInProgress, UnknownService
from .catalog import CatalogError


class NotFound(LookupError):
    """A page or resource that is not there (404)."""


def catalog_error(exc: CatalogError) -> WireError:
    return WireError("invalid_input", fields=exc.errors)


def unknown_service(exc: UnknownService) -> WireError:
    message = f"no service has code {exc.args[0]!r}"
    return WireError("invalid_input", message, {"service_code": [message]})


def in_progress(exc: SubmissionInProgress) -> WireError:
    message = "the first request with this key is still being processed; retry in a moment"
    return WireError("in_progress", message, {"idempotency_key": [message]})


def key_reused(exc: IdempotencyKeyReused) -> WireError:
    message = "already used for a different report"
    return WireError("idempotency_key_reused", message, {"idempotency_key": [message]})


def not_found(exc: NotFound) -> WireError:
    return WireError("not_found", str(exc) or None)


ERRORS = BASE.extend({
    CatalogError: catalog_error,
    UnknownService: unknown_service,
    SubmissionInProgress: in_progress,
    IdempotencyKeyReused: key_reused,
    NotFound: not_found,
})
http_errors = json_errors(ERRORS)
