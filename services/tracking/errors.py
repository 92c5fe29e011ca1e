"""Maps errors to answers in one place: 400 with field messages, 401/403, 404, 409."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import RecordConflictError
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from shared.chassis.auth import AuthError

from .domainmodel import DomainError
from .write.application import ReportNotFound

log = logging.getLogger(__name__)

RPC_EXPECTED = (ValidationError, DomainError, ReportNotFound, AuthError, PermissionError,
                KeyError, RecordConflictError)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                    headers=headers, mimetype="application/json")


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, ValidationError):
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return 400, {"errors": messages}
    if isinstance(exc, AuthError):
        return exc.status, {"errors": {"authorization": [str(exc)]}}
    if isinstance(exc, PermissionError):
        return 403, {"errors": {"access_token": [str(exc) or "forbidden"]}}
    if isinstance(exc, ReportNotFound):
        return 404, {"errors": {"folio": [f"no report has folio {exc.args[0]}"]}}
    if isinstance(exc, DomainError):
        return 409, {"errors": {"report": [str(exc)]}, "code": exc.code}
    if isinstance(exc, RecordConflictError):
        return 409, {"errors": {"report": ["the report changed meanwhile; try again"]}}
    raise exc


def http_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap an HTTP entrypoint so that a known error becomes its status code, never a 500."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return handler(*args, **kwargs)
        except Exception as exc:
            status, body = error_body(exc)
            if status == 401:
                return json_response(body, status, {"WWW-Authenticate": "Bearer"})
            return json_response(body, status)

    return wrapper
