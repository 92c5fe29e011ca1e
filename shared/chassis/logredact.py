"""Secrets out of logged URLs: the citizen's `?token=`, an Open311 `api_key=` and their kin.

eventlet's access log writes each request line as it came, query string included; the server's
log goes through RedactedLog, which replaces the value of every secret-named parameter."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

SECRET_PARAMETERS = frozenset({"token", "access_token", "api_key", "key", "secret", "password"})
REDACTED = "[redacted]"
_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;\s\"#?]+)=(?P<value>[^&;\s\"#]*)")


def redact(text: str) -> str:
    """`GET /folio/X?token=abc&lang=es` -> `GET /folio/X?token=[redacted]&lang=es`."""

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            return f"{match['lead']}{name}={REDACTED}"
        return match.group()

    return _PARAMETER.sub(replace, text)


class RedactedLog:
    """Wraps the logger eventlet's server writes to (its access log and its errors)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _text(self, msg: Any, args: tuple[Any, ...]) -> str:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = " ".join([text, *map(str, args)])
        return redact(text)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.inner.info(self._text(msg, args), **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.inner.debug(self._text(msg, args), **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.inner.warning(self._text(msg, args), **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.inner.error(self._text(msg, args), **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.inner.exception(self._text(msg, args), **kwargs)

    def write(self, msg: Any, *args: Any) -> None:
        self.inner.write(self._text(msg, args))
