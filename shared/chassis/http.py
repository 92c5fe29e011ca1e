"""The one HTTP layer of every service: nameko's `http` entrypoint, hardened.

- A body is read (at most `max_body` + 1 bytes, chunked or not) before the entrypoint runs,
  before parsing and authentication: a larger one is a 413 and the connection is closed.
- Every request has an id (a sane incoming `X-Request-Id`, else a new one): on every answer, in
  every error log line, and passed on to the services it calls (nameko context data).
- Anything unexpected is a 500 that says only that something failed, with the request id; the
  traceback goes to the log. Unknown routes and methods answer the wire's codes.
- Security headers on every answer (nosniff, no referrer; CSP and no framing on HTML).
- The access log never shows secrets from query strings (`?token=`, `api_key=` …).

eventlet's WSGI server writes a response's headers and body in two sends. With Nagle's algorithm
on, the body waits for the client to acknowledge the headers, and a keep-alive client delays that
acknowledgement by up to 40 ms: every response on a reused connection took 40 ms longer.

Left alone, eventlet also keeps an idle keep-alive connection (and its green thread and buffers)
forever: clients that never close theirs would grow the process without bound. Idle connections
close after HTTP_KEEPALIVE_SECONDS; a client that stalls mid-request after HTTP_SOCKET_TIMEOUT."""

from __future__ import annotations

import io
import logging
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from shared.chassis.answers import (  # noqa: F401  (the HTTP layer's API, in one import)
    REQUEST_ID_KEY,
    answer_error,
    error_response,
    html_error_page,
    json_errors,
    json_response,
    read_json,
    request_id_of,
    static_file,
)
from shared.chassis.errortable import BASE
from shared.chassis.logredact import RedactedLog
from shared.contracts.errors import WireError

log = logging.getLogger(__name__)
DEFAULT_MAX_BODY = 64 * 1024  # a JSON or form body; photo doors pass their own
READ_CHUNK = 64 * 1024
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
MaxBody = int | Callable[[dict[str, Any]], int]  # bytes, or read from the configuration


def origins_of(urls: str) -> list[str]:
    """The http(s) origins of a comma-separated list of URLs, each once."""
    origins: list[str] = []
    for url in urls.split(","):
        parts = urlsplit(url.strip())
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme in ("http", "https") and ORIGIN.match(origin) and origin not in origins:
            origins.append(origin)
    return origins


def content_security_policy(trusted_media: str = "", status_page: str = "",
                            connect: str = "") -> str:
    """Pages load only their own styles and scripts (no inline code) and may not be framed.
    Photos come from `'self'`, https, and the origins of TRUSTED_MEDIA_URLS (a comma-separated
    list of URL prefixes: the plain-http media of a local intake, say) — what a report's
    photo URLs may name. A form may lead to this service or to the status page (STATUS_PAGE_URL:
    the portal's lookup sends the citizen there, and browsers hold a form's redirects to
    form-action too). Pages that talk to other services (`connect`: tracking's status page, to
    notifications' live stream and push doors) may connect to this service and their origins,
    and register a service worker of their own; other pages connect nowhere."""
    talks = origins_of(connect)
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            + " ".join(["img-src 'self' https:", *origins_of(trusted_media)]) + "; "
            + " ".join(["form-action 'self'", *origins_of(status_page)]) + "; "
            + (" ".join(["connect-src 'self'", *talks]) + "; worker-src 'self'; " if talks else "")
            + "base-uri 'none'; frame-ancestors 'none'")


def page_policy(config: Mapping[str, Any]) -> str:
    """The CSP of a service's pages, from its configuration (NOTIFICATIONS_URL: tracking's)."""
    return content_security_policy(str(config.get("TRUSTED_MEDIA_URLS") or ""),
                                   str(config.get("STATUS_PAGE_URL") or ""),
                                   str(config.get("NOTIFICATIONS_URL") or ""))


def secure(response: Response, request_id: str, csp: str) -> Response:
    headers = response.headers
    headers["X-Request-Id"] = request_id
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # The citizen's private link carries the access token: never leak it in a Referer.
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Frame-Options", "DENY")
    return response


class _NoContinue:
    """Stands for a `100 Continue` never sent (see hang_up); nothing is ever written to it."""

    def writelines(self, lines: Any) -> None:
        pass

    def flush(self) -> None:
        pass


def hang_up(environ: dict[str, Any]) -> None:
    """Close the connection after this answer rather than read the rest of a body we refused.

    eventlet drains an unread body before reusing a connection (a 20 MB body would be read to
    the end, an endless chunked one forever) unless the client was never told to continue after
    `Expect: 100-continue`: marking the input so makes eventlet close instead. A request
    without a body keeps its connection."""
    request_input = environ.get("eventlet.input")
    has_body = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or (
        environ.get("CONTENT_LENGTH") or "0").strip() not in ("", "0")
    if has_body and request_input is not None and getattr(request_input, "wfile", 0) is None:
        request_input.wfile = _NoContinue()


def take_body(environ: dict[str, Any], limit: int) -> WireError | None:
    """Read the body into memory, at most `limit` + 1 bytes; the error to answer, if any.

    Afterwards the request reads it as a plain body of known length (chunked ones too)."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    declared = environ.get("CONTENT_LENGTH") or ""
    if not chunked and not declared.strip():
        environ["wsgi.input"] = io.BytesIO(b"")
        return None
    too_large = WireError("payload_too_large", f"the body may have at most {limit} bytes")
    want = limit + 1
    if not chunked:
        try:
            want = int(declared)
        except ValueError:
            hang_up(environ)
            return WireError("invalid_input", "the Content-Length is not a number")
        if want > limit:
            hang_up(environ)
            return too_large
    chunks, got = [], 0
    try:
        while got < want:
            chunk = environ["wsgi.input"].read(min(want - got, READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except (OSError, ValueError):  # a timeout, a reset, a broken chunk
        hang_up(environ)
        return WireError("invalid_input", "the body could not be read")
    if got > limit:
        hang_up(environ)
        return too_large
    if not chunked and got < want:
        hang_up(environ)
        return WireError("invalid_input", "the body ended before its Content-Length")
    environ["wsgi.input"] = io.BytesIO(b"".join(chunks))
    environ["CONTENT_LENGTH"] = str(got)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return None


def incoming_request_id(environ: dict[str, Any]) -> str:
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex


def wants_html(environ: dict[str, Any]) -> bool:
    return "text/html" in environ.get("HTTP_ACCEPT", "")


class GuardedWsgiApp(WsgiApp):
    """nameko's WSGI app with a request id, the wire's errors for unknown routes, a bare 500 for
    anything unexpected, and the security headers on every answer."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request_id = environ[REQUEST_ID_KEY] = incoming_request_id(environ)
        request = Request(environ, shallow=True)
        try:
            response = self.route(request, environ)
        except Exception:
            log.exception("%s %s failed (request %s)", request.method, request.path, request_id)
            error = WireError("internal")
            response = (html_error_page(error, request_id) if wants_html(environ)
                        else error_response(error, request_id))
        return secure(response, request_id, self.server.csp)(environ, start_response)

    def route(self, request: Request, environ: dict[str, Any]) -> Response:
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            if exc.code is None or exc.code < 400:  # a redirect (e.g. a missing slash)
                return exc.get_response(environ)
            hang_up(environ)
            headers = {}
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                headers["Allow"] = ", ".join(exc.valid_methods)
            error = WireError("method_not_allowed" if exc.code == 405 else "not_found")
            request_id = request_id_of(request)
            response = (html_error_page(error, request_id) if wants_html(environ)
                        else error_response(error, request_id))
            response.headers.update(headers)
            return response
        request.path_values = values  # type: ignore[attr-defined]  # nameko's handlers read it
        return provider.handle_request(request)


class ChassisWebServer(WebServer):
    def get_wsgi_server(self, sock: Any, wsgi_app: Any, *args: Any, **kwargs: Any) -> Any:
        server = super().get_wsgi_server(sock, wsgi_app, *args, **kwargs)
        config = self.container.config
        server.keepalive = float(config.get("HTTP_KEEPALIVE_SECONDS") or 75)
        server.socket_timeout = float(config.get("HTTP_SOCKET_TIMEOUT") or 60)
        server.log = RedactedLog(server.log)
        return server

    def get_wsgi_app(self) -> Any:
        self.csp = page_policy(self.container.config)
        return GuardedWsgiApp(self)

    def process_request(self, sock: Any, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(sock, address)

    def context_data_from_headers(self, request: Request) -> dict[str, Any]:
        """The worker's context data: the request id travels on to the services it calls."""
        return {"request_id": request_id_of(request)}


class HttpEntrypoint(HttpRequestHandler):
    """`@http("POST", "/reports", max_body=64 * 1024, html=False)`: `max_body` in bytes or a
    function of the configuration; `html=True` for pages (their errors are small pages)."""

    server = ChassisWebServer()

    def __init__(self, method: str, url: str, max_body: MaxBody = DEFAULT_MAX_BODY,
                 html: bool = False, **kwargs: Any) -> None:
        self.max_body_setting = max_body
        self.html = html
        super().__init__(method, url, **kwargs)

    def setup(self) -> None:
        limit = self.max_body_setting
        self.max_body = int(limit(self.container.config) if callable(limit) else limit)
        # Checked once here, not per request (nameko inspects the method on every call): a
        # route's variables are the method's keyword arguments, so if they fit now they always
        # will. A misfit (a typo in either) stops the service at start-up.
        rule = self.get_url_rule()
        Map([rule])  # binding the rule to a map is what parses its variables (rule.arguments)
        super().check_signature((None,), dict.fromkeys(rule.arguments))
        super().setup()

    def check_signature(self, args: Any, kwargs: Any) -> None:
        """Done at setup."""

    def handle_request(self, request: Request) -> Response:
        request.shallow = False
        refused = take_body(request.environ, self.max_body)
        if refused is not None:
            return self.error_page(refused, request)
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data=context_data,
                                        handle_result=partial(self.handle_result, event))
            return self.response_from_result(event.wait())
        except Exception as exc:  # what the service's own error wrapper did not answer
            return answer_error(exc, BASE, request, self.html)

    def error_page(self, error: WireError, request: Request) -> Response:
        request_id = request_id_of(request)
        if self.html:
            return html_error_page(error, request_id)
        return error_response(error, request_id)


http = HttpEntrypoint.decorator
