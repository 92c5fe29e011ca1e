"""The citizen's HTML pages: look up a folio, and its status with the timeline (Spanish)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(
    loader=PackageLoader("services.tracking.read", "templates"),
    autoescape=select_autoescape(["html"]),
)
TIMEZONE = ZoneInfo(os.environ.get("TIMEZONE", "America/Mexico_City"))


def local_time(value: str | None) -> str:
    """`2026-11-22T21:03:57+00:00` -> `22/11/2026 15:03` in the municipality's time zone."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(TIMEZONE).strftime("%d/%m/%Y %H:%M")


_env.filters["local"] = local_time


def render_status(folio: str, view: dict[str, Any] | None, *, private: bool = False,
                  refused: bool = False, follow_url: str | None = None,
                  live_url: str | None = None, version: int | None = None) -> str:
    """A folio's page: `private` when the access token opened it, `refused` when the token given
    does not belong to it; `follow_url` is where a citizen asks to be told of each step.
    `live_url` (notifications) and `version` (the stream version the view holds) make the page
    follow each later step as it happens and offer web push (static/live.js)."""
    live = live_url if view is not None and version is not None else None
    return _env.get_template("status.html").render(folio=folio, view=view, private=private,
                                                   refused=refused, follow_url=follow_url,
                                                   live_url=live, version=version)


def render_lookup(folio: str | None) -> str:
    return _env.get_template("lookup.html").render(folio=folio or "")
