"""Maps errors to HTTP answers in one place: 400 with field messages, 401/403, 404, 409, 503."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError
from nameko.exceptions import RemoteError
from nameko.exceptions import UnknownService as ServiceDown
from werkzeug.wrappers import Response

from shared.chassis.auth import AuthError
from shared.chassis.rpcclient import RpcTimeout

from .application import IdempotencyKeyReused, SubmissionInProgress, UnknownService
from .catalog import CatalogError

log = logging.getLogger(__name__)
# What tracking's errors mean to intake's callers (nameko sends the exception's class name).
REMOTE_STATUS = {"ValidationError": 400, "InvalidCommand": 409, "ReportNotFound": 404,
                 "Unauthenticated": 401, "Forbidden": 403, "PermissionError": 403}


class NotFound(LookupError):
    """A page or resource that is not there (404)."""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                    headers=headers, mimetype="application/json")


def error_answer(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, {"errors": {field: [messages]}}) for an error we expect; raises anything else."""
    if isinstance(exc, ValidationError):
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return 400, {"errors": messages}
    if isinstance(exc, CatalogError):
        return 400, {"errors": exc.errors}
    if isinstance(exc, UnknownService):
        return 400, {"errors": {"service_code": [f"no service has code {exc.args[0]!r}"]}}
    if isinstance(exc, AuthError):
        return exc.status, {"errors": {"authorization": [str(exc)]}}
    if isinstance(exc, SubmissionInProgress):
        return 409, {"errors": {"idempotency_key": ["the first request with this key is still "
                                                    "being processed; retry in a moment"]}}
    if isinstance(exc, IdempotencyKeyReused):
        return 422, {"errors": {"idempotency_key": ["already used for a different report"]}}
    if isinstance(exc, NotFound):
        return 404, {"errors": {"_": [str(exc) or "not found"]}}
    if isinstance(exc, ServiceDown):
        return 503, {"errors": {"tracking": ["tracking is not running; try again shortly"]}}
    if isinstance(exc, RpcTimeout):
        return 503, {"errors": {"tracking": [str(exc)]}}
    if isinstance(exc, RemoteError):
        status = REMOTE_STATUS.get(exc.exc_type, 502)
        if status == 502:
            log.error("tracking failed: %s", exc)
        return status, {"errors": {"tracking": [exc.value or exc.exc_type]}}
    raise exc


def http_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap an HTTP entrypoint so that a known error becomes its status code, never a 500."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return handler(*args, **kwargs)
        except Exception as exc:
            status, body = error_answer(exc)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return json_response(body, status, headers)

    return wrapper
