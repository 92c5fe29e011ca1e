"""The portal's pages: Jinja2 rendering, local times, and errors as Spanish HTML pages.

Errors map through intake's table (services/intake/errors.py), as its JSON doors do: tracking's
codes keep their status, a dependency down is a 503, anything unexpected a 500 whose page shows
only the request id. The security headers come from the chassis (shared/chassis/http.py)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from shared.chassis.http import request_id_of
from shared.chassis.metrics import ERROR_ANSWERS
from shared.contracts.errors import RETRY_AFTER_SECONDS

from ..errors import ERRORS

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """Something the portal needs (tracking, the photo store) did not answer: a 503 page."""


class Pages:
    """The portal's templates and the addresses its pages link to."""

    def __init__(self, env: Environment, zone: ZoneInfo, public_url: str,
                 status_url: str) -> None:
        self.env = env
        self.zone = zone
        self.public_url = public_url.rstrip("/")
        self.status_url = status_url.rstrip("/")

    def status_page(self, folio: str, token: str | None = None) -> str:
        """Tracking's status page of a folio, the one page every channel links to (with the
        citizen's access token: the private link)."""
        url = f"{self.status_url}/{quote(folio, safe='')}"
        return f"{url}?{urlencode({'token': token})}" if token else url

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(template).render(**context)
        # Pages may show the citizen's private view: no cache keeps them.
        return Response(html, status=status, mimetype="text/html",
                        headers={"Cache-Control": "no-store"})

    def error(self, status: int, detail: str | None = None,
              request_id: str | None = None) -> Response:
        """The friendly page of an error status (its Spanish text is in error.html)."""
        response = self.render("error.html", status, code=status, detail=detail,
                               request_id=request_id)
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class PortalTemplates(DependencyProvider):
    """`self.portal` in an entrypoint: the Jinja2 environment, built once in `setup()`."""

    def setup(self) -> None:
        config = self.container.config
        zone = ZoneInfo(str(config.get("TIMEZONE") or "America/Mexico_City"))
        env = Environment(loader=PackageLoader("services.intake.portal", "templates"),
                          autoescape=select_autoescape(["html"]))
        env.filters["local"] = functools.partial(local_time, zone=zone)
        self.pages = Pages(env, zone, str(config.get("PUBLIC_URL") or ""),
                           str(config.get("STATUS_PAGE_URL") or ""))
        env.globals["status_page"] = self.pages.status_page

    def get_dependency(self, worker_ctx: Any) -> Pages:
        return self.pages


def local_time(value: str | None, zone: ZoneInfo) -> str:
    """`2026-11-22T21:03:57+00:00` -> `22/11/2026 15:03` in the municipality's time zone."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).astimezone(zone).strftime("%d/%m/%Y %H:%M")
    except (TypeError, ValueError):
        return str(value)


def html_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Every error a friendly Spanish page with its status (400/403/404/413/503); a 500 page
    shows only the request id, and the traceback goes to the log."""

    @functools.wraps(handler)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return handler(self, request, *args, **kwargs)
        except Exception as exc:
            status, detail = error_page(exc, request)
        request_id = request_id_of(request) if status >= 500 else None
        try:
            return self.portal.error(status, detail, request_id)
        except Exception:  # even the error page failed: the chassis' bare one
            log.exception("the error page failed (request %s)", request_id_of(request))
            raise

    return wrapper


def error_page(exc: Exception, request: Request) -> tuple[int, str | None]:
    """(status, detail for the page) of an error; what no one expected is logged, and a 500."""
    if isinstance(exc, Unavailable):
        log.warning("portal page unavailable (request %s): %s", request_id_of(request), exc)
        ERROR_ANSWERS.labels("unavailable").inc()
        return 503, str(exc) or None
    error = ERRORS.wire(exc)
    if error is None:
        log.error("%s %s failed (request %s)", request.method, request.path,
                  request_id_of(request), exc_info=exc)
        ERROR_ANSWERS.labels("internal").inc()
        return 500, None
    ERROR_ANSWERS.labels(error.code).inc()
    if error.status >= 500:
        log.warning("%s %s answered %s (request %s): %r", request.method, request.path,
                    error.code, request_id_of(request), exc)
    return error.status, None
