"""What an HTTP entrypoint answers: JSON bodies, wire errors, the one error wrapper, read_json.

Every error body is the wire's (shared/contracts/errors.py) with the request id; a 503 says when
to retry; a 500 says only that something failed, and its traceback goes to the log with the
request id, never to the client."""

from __future__ import annotations

import functools
import html
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from shared.chassis.errortable import ErrorTable
from shared.chassis.metrics import ERROR_ANSWERS
from shared.contracts.errors import RETRY_AFTER_SECONDS, WireError

log = logging.getLogger(__name__)
REQUEST_ID_KEY = "expediente.request_id"
MAX_JSON_DEPTH = 32
# A JSON string (skipped, even unterminated) or a bracket (counted).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def request_id_of(request: Request | None) -> str:
    """The id this request is known by in logs and answers (set by the chassis' server)."""
    if request is None:
        return "-"
    return str(request.environ.get(REQUEST_ID_KEY) or "-")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`body` as JSON (UTF-8). A string that cannot be UTF-8 (a lone surrogate kept somewhere)
    is sent escaped rather than failing the answer."""
    text = json.dumps(body, ensure_ascii=False, default=str)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(body, default=str).encode("ascii")
    return Response(data, status=status, headers=headers, mimetype="application/json")


STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*\.(css|js)$")
STATIC_TYPES = {"css": "text/css", "js": "text/javascript"}


def static_file(directory: Path, name: str) -> Response:
    """A page's own stylesheet or script (the CSP lets pages load nothing inline), e.g.
    GET /static/portal.css; any other name is a 404."""
    path = directory / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise WireError("not_found", f"no file {name!r}")
    return Response(path.read_bytes(), mimetype=STATIC_TYPES[name.rsplit(".", 1)[1]],
                    headers={"Cache-Control": "public, max-age=3600"})


def error_headers(error: WireError) -> dict[str, str]:
    if error.status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if error.status == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return {}


def error_response(error: WireError, request_id: str) -> Response:
    """The wire error as a JSON answer with its status."""
    ERROR_ANSWERS.labels(error.code).inc()
    return json_response(error.document(request_id), error.status, error_headers(error))


HTML_TITLES = {
    400: "La solicitud no es válida / Bad request",
    404: "No encontrado / Not found",
    405: "Método no permitido / Method not allowed",
    413: "Lo que enviaste es demasiado grande / Request too large",
    500: "Algo falló / Something failed",
    503: "El servicio no está disponible / Service unavailable",
}


def html_error_page(error: WireError, request_id: str) -> Response:
    """A small page for HTML routes (no inline style or script: the CSP allows none)."""
    ERROR_ANSWERS.labels(error.code).inc()
    title = HTML_TITLES.get(error.status) or HTML_TITLES[400 if error.status < 500 else 500]
    page = (f'<!doctype html><html lang="es"><head><meta charset="utf-8"><title>{title}</title>'
            f"</head><body><h1>{title}</h1><p>{html.escape(error.message)}</p>"
            f"<p>Código de la solicitud / request id: <code>{html.escape(request_id)}</code>"
            '</p><p><a href="/">Inicio</a></p></body></html>')
    return Response(page, status=error.status, headers=error_headers(error), mimetype="text/html")


def answer_error(exc: BaseException, table: ErrorTable, request: Request | None,
                 html_page: bool = False) -> Response:
    """The answer to an exception that ended a request: its wire error, or a bare 500."""
    request_id = request_id_of(request)
    error = table.wire(exc)
    where = f"{request.method} {request.path}" if request is not None else "request"
    if error is None:
        log.error("%s failed (request %s)", where, request_id, exc_info=exc)
        error = WireError("internal")
    elif error.status >= 500:
        log.warning("%s answered %s (request %s): %r", where, error.code, request_id, exc)
    if html_page:
        return html_error_page(error, request_id)
    return error_response(error, request_id)


def json_errors(table: ErrorTable, *, html_page: bool = False
                ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """The error wrapper of a service: `http_errors = json_errors(ERRORS)`, then put
    `@http_errors` under `@http(...)`. A known error answers its code and status, never a 500
    (as a small page with `html_page`, for the doors a browser opens)."""

    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return handler(self, request, *args, **kwargs)
            except Exception as exc:
                return answer_error(exc, table, request, html_page)

        return wrapper

    return decorate


def read_json(request: Request, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The body as a JSON object (an empty body is `{}`), or `invalid_input` saying why not."""
    data = request.get_data(cache=True)
    if not data.strip():
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise body_error("the body is not valid UTF-8") from None
    # Fewer brackets than the limit cannot nest past it (the usual body): no scan needed.
    if text.count("{") + text.count("[") > max_depth and nesting(text) > max_depth:
        raise body_error(f"the body nests deeper than {max_depth} levels")
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise body_error("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise body_error("the body must be a JSON object")
    # "\ud800" parses into a string that nothing downstream can encode or store. Decoded UTF-8
    # holds no surrogate, so only a body with a \u escape can carry one.
    if "\\u" in text:
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise body_error("the body holds an invalid character (a lone surrogate)") from None
    return body


def nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (strings skipped)."""
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in ("]", "}"):
            depth -= 1
    return deepest


def body_error(message: str) -> WireError:
    return WireError("invalid_input", message, {"_body": [message]})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
