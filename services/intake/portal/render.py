"""The portal's pages: Jinja2 rendering, local times, and errors as Spanish HTML pages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from nameko.extensions import DependencyProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from ..errors import error_answer

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

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(template).render(**context)
        return Response(html, status=status, mimetype="text/html", headers={
            "Cache-Control": "no-store",
            # The private link carries the access token: never leak it to photo hosts.
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        })

    def error(self, status: int, detail: str | None = None) -> Response:
        """The friendly page of an error status (its Spanish text is in error.html)."""
        return self.render("error.html", status, code=status, detail=detail)


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
    """Every error a friendly Spanish page with its status: 400/403/404/413/503, never a 500."""

    @functools.wraps(handler)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Response:
        try:
            return handler(self, *args, **kwargs)
        except Exception as exc:
            status, detail = error_page(exc)
        try:
            return self.portal.error(status, detail)
        except Exception:  # even the error page failed: still not a 500
            log.exception("the error page failed")
            return Response("El servicio no está disponible por el momento; intenta de nuevo "
                            "en unos minutos.", status=503, mimetype="text/plain")

    return wrapper


def error_page(exc: Exception) -> tuple[int, str | None]:
    """(status, detail for the page) of an error; what no one expected is logged, and a 503."""
    if isinstance(exc, RequestEntityTooLarge):
        return 413, None
    if isinstance(exc, Unavailable):
        return 503, str(exc) or None
    try:
        status, _ = error_answer(exc)  # the one mapping of errors to statuses
    except Exception:
        log.exception("portal page failed")
        return 503, None
    return (503 if status >= 500 else status), None
