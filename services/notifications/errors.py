"""Notifications' errors as wire codes, in one table for its RPC replies and its HTTP answers."""

from __future__ import annotations

from shared.chassis.errortable import BASE
from shared.chassis.http import json_errors
from shared.contracts.errors import WireError

from .hooks import WebhookNotFound
from .links import BadLink


def missing(exc: LookupError) -> WireError:
    return WireError("not_found", str(exc), {"id": [str(exc)]})


def bad_link(exc: BadLink) -> WireError:
    return WireError("not_found", str(exc), {"token": [str(exc)]})


ERRORS = BASE.extend({
    WebhookNotFound: missing,
    BadLink: bad_link,
})
http_errors = json_errors(ERRORS)
html_errors = json_errors(ERRORS, html_page=True)
