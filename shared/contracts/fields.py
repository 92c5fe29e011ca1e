"""Field types of every edge schema: text a client sent, bounded dates, answer maps, media URLs.

Text refuses what no person types and what a store or a document cannot hold: the C0 control
characters other than tab, newline and carriage return (PostgreSQL refuses U+0000; XML 1.0 refuses
the rest), DEL and the C1 range U+0080–U+009F (invisible, and C1 codes are terminal controls),
the non-characters U+FFFE and U+FFFF (not allowed in XML), lone surrogates (no UTF-8 for them)
and bytes that are not UTF-8. A `Line` is a single-line text (codes, names, folios, ids): no tab
and no line break either. Every text says its length limit."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, validate

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
SURROGATE = re.compile("[\ud800-\udfff]")
LINE_BREAK = re.compile("[\t\n\r\u2028\u2029]")
MESSAGES = {
    "control": "contains a control character ({char} at position {position}); only tab, "
               "newline and carriage return are allowed",
    "surrogate": "is not valid Unicode text (a lone surrogate {char} at position {position})",
    "line_break": "must be a single line (a tab or line break at position {position})",
    "invalid_utf8": "is not valid UTF-8 text",
    "too_long": "at most {max:,} characters",
    "too_short": "at least {min:,} characters",
    "blank": "may not be blank",
}
# What a client may send as a query's date: anything else is a typo or a probe (year 1 or 9999
# overflow once moved to UTC).
FIRST_YEAR, LAST_YEAR = 2000, 2100
MAX_WHOLE = 10**15  # a whole number an answer may be (a float holds it exactly)


def text_problem(value: str, single_line: bool = False) -> str | None:
    """Why `value` is not acceptable text (one of MESSAGES, filled in), or None."""
    for kind, pattern in (("surrogate", SURROGATE), ("control", CONTROL)):
        found = pattern.search(value)
        if found:
            return MESSAGES[kind].format(char=f"U+{ord(found.group()):04X}",
                                         position=found.start())
    if single_line:
        found = LINE_BREAK.search(value)
        if found:
            return MESSAGES["line_break"].format(position=found.start())
    return None


class Text(fields.String):
    """Free text of at most `max_length` characters; `strip=True` trims the ends first (and a
    required text then may not be only spaces)."""

    default_error_messages = {"invalid_utf8": MESSAGES["invalid_utf8"]}
    single_line = False

    def __init__(self, max_length: int, *, min_length: int = 0, strip: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length, self.min_length, self.strip = max_length, min_length, strip

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.strip:
            text = text.strip()
        if len(text) > self.max_length:
            raise ValidationError(MESSAGES["too_long"].format(max=self.max_length))
        if len(text) < self.min_length:
            raise ValidationError(MESSAGES["blank" if self.strip and not text
                                           else "too_short"].format(min=self.min_length))
        problem = text_problem(text, self.single_line)
        if problem:
            raise ValidationError(problem)
        return text


class Line(Text):
    """A single line: codes, names, folios, ids, keys."""

    single_line = True


def pattern(regex: str, error: str) -> validate.Regexp:
    """A whole-value pattern: `$` would also match before a final newline, `\\Z` does not."""
    return validate.Regexp(re.compile(regex.removesuffix("$") + r"\Z"), error=error)


def one_of(choices: Iterable[str], **kwargs: Any) -> Line:
    """A Line that must be one of `choices` (long enough for the choices' message to show)."""
    choices = tuple(choices)
    return Line(max(100, *(len(c) for c in choices)), validate=validate.OneOf(choices),
                **kwargs)


# ---- numbers and dates --------------------------------------------------------------------------


def finite(**kwargs: Any) -> fields.Float:
    """A float that is a number (no NaN or Infinity)."""
    return fields.Float(allow_nan=False, **kwargs)


class QueryDateTime(fields.AwareDateTime):
    """A date a client filters by: with its time zone, between the years 2000 and 2100."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not FIRST_YEAR <= moment.year <= LAST_YEAR:
            raise ValidationError(f"a date between the years {FIRST_YEAR} and {LAST_YEAR}")
        return moment


@dataclass
class TimeWindow:
    """How far from now a client's `occurred_at` may be: `past` for crews that sync late after
    working offline, `future` for clock skew. Mutable so a service sets it from configuration."""

    past: timedelta = timedelta(days=30)
    future: timedelta = timedelta(minutes=5)


class RecentDateTime(QueryDateTime):
    """When something happened, by the client's clock: within `window` of now."""

    def __init__(self, window: TimeWindow, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        now = datetime.now(UTC)
        if moment > now + self.window.future:
            raise ValidationError(f"is in the future (more than {_span(self.window.future)} "
                                  "ahead of our clock)")
        if moment < now - self.window.past:
            raise ValidationError(f"is older than {_span(self.window.past)}")
        return moment


def _span(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return f"{delta.days} days"
    return f"{int(delta.total_seconds() // 60)} minutes"


# ---- answer maps --------------------------------------------------------------------------------


class AttributeMap(fields.Field[dict[str, Any]]):
    """{code: answer} (a category's questions, Open311 attributes): at most `max_keys` codes of
    a single line each; an answer is text, a number, true/false or null, or a short list of them.
    Text answers are checked like Text; `max_total` bounds all text together."""

    def __init__(self, *, max_keys: int = 50, key_length: int = 64, value_length: int = 4000,
                 max_items: int = 50, max_total: int = 20000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_keys, self.key_length, self.value_length = max_keys, key_length, value_length
        self.max_items, self.max_total = max_items, max_total

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("an object of {code: answer}")
        if len(value) > self.max_keys:
            raise ValidationError(f"at most {self.max_keys} answers")
        errors: dict[str, list[str]] = {}
        total = 0
        for index, (key, answer) in enumerate(value.items()):
            problem = (text_problem(key, single_line=True) if isinstance(key, str)
                       else "a code must be text")
            name = str(key) if problem is None else f"code #{index + 1}"
            if problem is None and not 1 <= len(key) <= self.key_length:
                name, problem = f"code #{index + 1}", f"1 to {self.key_length} characters"
            items = answer if isinstance(answer, list) else [answer]
            if problem is None and len(items) > self.max_items:
                problem = f"at most {self.max_items} choices"
            for item in items if problem is None else ():
                problem = self._scalar_problem(item)
                total += len(item) if isinstance(item, str) else 0
                if problem:
                    break
            if problem:
                errors[name] = [problem]
        if errors:
            raise ValidationError(errors)
        if total > self.max_total:
            raise ValidationError(f"the answers together: at most {self.max_total:,} characters")
        return dict(value)

    def _scalar_problem(self, item: Any) -> str | None:
        if item is None or isinstance(item, bool):
            return None
        if isinstance(item, int):
            return None if abs(item) <= MAX_WHOLE else f"a number of at most {MAX_WHOLE:,}"
        if isinstance(item, float):
            return None if math.isfinite(item) else "a finite number"
        if isinstance(item, str):
            if len(item) > self.value_length:
                return MESSAGES["too_long"].format(max=self.value_length)
            return text_problem(item)
        return "text, a number, true/false, or a short list of them"


# ---- URLs a client supplies ---------------------------------------------------------------------


@dataclass
class TrustedMedia:
    """URL prefixes of the deployment's own media (intake's `/media/`, the photo bucket), which
    may be plain http in development. Mutable so a service sets it from configuration."""

    prefixes: tuple[str, ...] = ("http://127.0.0.1:8000/media/", "http://localhost:8000/media/")

    def set(self, text: str) -> None:
        """From configuration: comma-separated prefixes."""
        self.prefixes = tuple(p.strip() for p in text.split(",") if p.strip())


MEDIA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*\Z")
HTTPS = validate.URL(relative=False, require_tld=False, schemes={"https"})


def media_url_problem(url: str, trusted: TrustedMedia, max_length: int = 2000) -> str | None:
    """Why a client's photo URL is refused, or None: https, or one of our own media files."""
    if len(url) > max_length:
        return MESSAGES["too_long"].format(max=max_length)
    if text_problem(url, single_line=True) or any(c.isspace() for c in url):
        return "a URL has no spaces or control characters"
    for prefix in trusted.prefixes:
        if url.startswith(prefix):
            return None if MEDIA_NAME.match(url[len(prefix):]) else "not one of our media files"
    try:
        HTTPS(url)
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except (ValidationError, ValueError):
        return "an https:// URL (or one of our own /media/ files)"
    if "@" in parts.netloc:
        return "a URL without user name or password"
    return None


class MediaUrl(fields.String):
    """A photo's URL a client gives: https, or one of `trusted`'s prefixes; no credentials."""

    def __init__(self, trusted: TrustedMedia, max_length: int = 2000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trusted, self.max_length = trusted, max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs)
        problem = media_url_problem(url, self.trusted, self.max_length)
        if problem:
            raise ValidationError(problem)
        return url
