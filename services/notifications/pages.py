"""The two small pages a citizen opens from a message: confirm a follower's address, opt out."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from werkzeug.wrappers import Response

HTML = {"text/html": None}

_env = Environment(loader=PackageLoader("services.notifications", "templates"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined)


def page(name: str, answer: int = 200, **context: Any) -> Response:
    return Response(_env.get_template(name).render(context), status=answer,
                    mimetype="text/html")
