"""What the property-based tests of the doors share: hostile values (the whole Unicode range with
NUL and lone surrogates, extreme dates, big and deep bodies), how to send them, and the checks
that follow every answer: never a 5xx, a refused request writes nothing, every view catches up."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote_plus

import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support import wait_for

# Modest on purpose: each example is a real HTTP round trip (and a report opened, when valid).
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
REFUSED = {400, 401, 403, 404, 405, 409, 411, 413, 415, 422}

# ---- values -------------------------------------------------------------------------------------

EVERY_CHARACTER = st.characters(exclude_categories=())  # control characters and surrogates too
POISON = ["\x00", "\ud800", "\udfff", "\x1b[2J", "\x07", "\x7f", "\x85", "\ufffe", "\x0b",
          "\u2028", "\r\n", "\t"]
hostile_text = st.one_of(
    st.text(EVERY_CHARACTER, max_size=30),
    st.builds(lambda head, poison, tail: head + poison + tail, st.text(max_size=10),
              st.sampled_from(POISON), st.text(max_size=10)),
    st.sampled_from(["", " ", "nan", "inf", "-Infinity", "1e309", "null", "0x10", "🕳️",
                     "../../etc/passwd", "<script>alert(1)</script>", "' OR 1=1 --",
                     "javascript:alert(1)", "data:text/html,<b>x</b>", "http://evil.example/x",
                     "https://user:pw@fotos.example/a.jpg", "x" * 4001, "é" * 5000]),
    st.integers(-10**30, 10**30).map(str),
)
EXTREME_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                 "1999-12-31T23:59:59Z", "2101-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
                 "2026-01-01T00:00:00", "2026-01-01", "2026-01-01T25:00:00Z",
                 "2026-01-01T00:00:00+24:00", "+275760-09-13T00:00:00Z", "now", "",
                 "2026-01-01T00:00:00\x00Z"]
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
dates = st.one_of(
    st.sampled_from(EXTREME_DATES),
    st.datetimes(timezones=offsets).map(lambda moment: moment.isoformat()),
    st.integers(-40 * 24 * 60, 24 * 60).map(
        lambda minutes: (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()),
)
scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=False) | hostile_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(hostile_text, inner, max_size=4), max_leaves=10)
any_value = st.one_of(hostile_text, dates, json_values)


def deep(levels: int) -> str:
    """JSON nested `levels` deep: a parser's recursion limit, not a report."""
    return "[" * levels + "]" * levels


# Bodies by name, so that a failing example prints its name rather than megabytes.
RAW_BODIES = {
    "a deep array": deep(20_000), "a deeper array": deep(100_000),
    "a deep object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "two megabytes": '{"description": "' + "x" * 2_000_000 + '"}', "a BOM": "\ufeff{}",
    "a list": "[]", "a lone surrogate": '"\\ud800"', "a NUL": '{"description": "\\u0000"}',
    "unclosed": "{" * 3, "NaN": "NaN", "a huge number": "1e999999",
}
raw_bodies = st.one_of(st.binary(max_size=200), st.sampled_from(sorted(RAW_BODIES)))


def raw_body(drawn: bytes | str) -> bytes | str:
    """The body a name of RAW_BODIES stands for (random bytes stand for themselves)."""
    return RAW_BODIES[drawn] if isinstance(drawn, str) else drawn


# ---- mutating a valid request ---------------------------------------------------------------


@st.composite
def poisoned(draw: Callable[..., Any], valid: str) -> str:
    """A valid value with one bad character slipped in: everything else about it still holds."""
    where = draw(st.integers(0, len(valid)))
    return valid[:where] + draw(st.sampled_from(POISON)) + valid[where:]


@st.composite
def mutated(draw: Callable[..., Any], valid: dict[str, Any], keys: list[str]) -> Any:
    """A valid JSON body with a field (now and then two or three) poisoned, replaced by a
    hostile value, dropped or added, at any depth of its objects; now and then not even an
    object. One change at a time keeps the rest valid, so the change itself is what is judged."""
    if draw(st.integers(0, 14)) == 0:
        return draw(json_values)
    body = json.loads(json.dumps(valid))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        target = body
        while True:  # walk into a nested object (or an object in a list) now and then
            inside = [v for v in target.values() if isinstance(v, dict)] + [
                item for v in target.values() if isinstance(v, list)
                for item in v if isinstance(item, dict)]
            if not inside or draw(st.booleans()):
                break
            target = draw(st.sampled_from(inside))
        existing = sorted(target)  # mostly a field the door knows, sometimes an unknown one
        key = draw(st.sampled_from(existing if existing and draw(st.integers(0, 3)) else keys))
        current = target.get(key)
        if key in target and draw(st.integers(0, 6)) == 0:
            del target[key]
        elif isinstance(current, str) and draw(st.booleans()):
            target[key] = draw(poisoned(current))
        elif isinstance(current, list) and current and isinstance(current[0], str):
            target[key] = [draw(poisoned(current[0])), *current[1:]]
        else:
            target[key] = draw(any_value)
    return body


def form_body(pairs: list[tuple[str, str]]) -> bytes:
    """application/x-www-form-urlencoded, lone surrogates sent as the invalid UTF-8 bytes a
    broken client would send."""
    return "&".join(f"{quote_plus(k.encode('utf-8', 'surrogatepass'))}="
                    f"{quote_plus(v.encode('utf-8', 'surrogatepass'))}"
                    for k, v in pairs).encode("ascii")


def send_json(method: str, url: str, body: Any, headers: dict[str, str] | None = None,
              raw: bytes | str | None = None) -> requests.Response:
    """JSON as json.dumps writes it: ASCII, so "\\ud800" and "\\u0000" travel as escapes."""
    data = raw if raw is not None else json.dumps(body)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return requests.request(method, url, data=data, timeout=60,
                            headers={"Content-Type": "application/json", **(headers or {})})


# ---- checks -------------------------------------------------------------------------------------


class Writes:
    """Counts of what a request may write: events in tracking's store, rows in intake's."""

    INTAKE = ("intake_submissions", "intake_conversations", "intake_photos")

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        events = sorted(t for t in stack.tables("tracking")
                        if t.endswith("_events") and t not in ("processed_events",))
        assert events, stack.tables("tracking")
        self.events_table = events[0]
        self.intake_tables = [t for t in self.INTAKE if t in stack.tables("intake")]

    def now(self) -> tuple[int, ...]:
        counts = [self.stack.query("tracking", f"SELECT COUNT(*) FROM {self.events_table}")[0][0]]
        for table in self.intake_tables:
            counts.append(self.stack.query("intake", f"SELECT COUNT(*) FROM {table}")[0][0])
        if "intake_conversations" in self.intake_tables:  # a message moves a conversation
            counts.append(self.stack.query(
                "intake", "SELECT COALESCE(SUM(version), 0) FROM intake_conversations")[0][0])
        return tuple(int(n) for n in counts)

    def check(self, response: requests.Response, before: tuple[int, ...],
              success: set[int]) -> None:
        """Never a 5xx; a refusal is a known 4xx and leaves every count as it was."""
        assert response.status_code < 500, (response.status_code, response.text[:2000])
        if response.status_code in success:
            return
        assert response.status_code in REFUSED, (response.status_code, response.text[:2000])
        assert self.now() == before, f"a refused request ({response.status_code}) wrote"


def views_caught_up(stack: Any) -> None:
    """Every follower of tracking's log reaches its last notification, and none parked an event
    it could not apply (the failures table, where there is one, is empty)."""
    writes = Writes(stack)
    tables = stack.tables("tracking")
    last = stack.query("tracking",
                       f"SELECT COALESCE(MAX(notification_id), 0) FROM {writes.events_table}")
    positions = "follower_positions" if "follower_positions" in tables else "projection_positions"

    def behind() -> list[tuple[str, int]]:
        rows = stack.query("tracking", f"SELECT name, position FROM {positions}")
        return [(name, int(position)) for name, position in rows if position < last[0][0]]

    try:
        wait_for(lambda: not behind(), timeout=30, message="the views to catch up")
    except AssertionError:
        raise AssertionError(f"behind the log's {last[0][0]}: {behind()}") from None
    for failures in ("follower_failures", "projection_failures"):
        if failures in tables:
            assert stack.query("tracking", f"SELECT * FROM {failures}") == []
