"""Open311 GeoReport v2 at the edge, as pure functions: read a client's form and query into a
Submission or tracking's filters, with the spec's errors. The documents are in documents.py."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from shared.contracts.contacts import ContactSchema
from shared.contracts.fields import FIRST_YEAR, LAST_YEAR, media_url_problem, text_problem

from ..application import Submission
from ..catalog import CatalogError, ServiceDefinition
from ..schemas import TRUSTED_MEDIA, answers

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
# The element that holds each item of a list, after the spec's examples (Spark convention).
ITEM_TAGS = {"services": "service", "service_requests": "request", "attributes": "attribute",
             "values": "value", "errors": "error", "endpoints": "endpoint", "formats": "format",
             "service_request_updates": "request_update"}
MAX_DESCRIPTION = 4000
MAX_WINDOW = timedelta(days=90)      # "may not span more than 90 days"
UPDATES_WINDOW = timedelta(days=1)   # servicerequestupdates without a start_date
MAX_PAGE_SIZE = 1000                 # "first 1000 requests returned", at most
DEFAULT_PAGE_SIZE = 50               # a page a client renders; more with page_size / page
ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone")
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
CONTACT = ContactSchema()
ANSWERS = answers()
# Values that may span lines; every other argument is a single line (codes, ids, names, dates).
MULTILINE = ("description", "address_string")
MAX_ARGUMENTS = 200  # arguments in one form or query (a category asks far fewer questions)
MAX_NAME = 100       # an argument's name: attribute[CODE][] with a code of up to 64
DATE_HINT = "a W3C date and time with its time zone, e.g. 2026-01-31T08:00:00-06:00"


class Open311Error(Exception):
    """An answer in the spec's error format: the HTTP `status` and one description per problem."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions or ("the request could not be fulfilled",)

    def document(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": text} for text in self.descriptions]


# ---- reading the client's input ----------------------------------------------------------------


def form_value(form: Mapping[str, str], name: str) -> str | None:
    """An optional argument: empty counts as not given, as the spec says; one that is not clean
    text (a control character, a line break where one line is expected) is a 400."""
    value = form.get(name)
    problem = value and argument_problem(name, value)
    if problem:
        raise Open311Error(400, problem)
    return value.strip() if value and value.strip() else None


def argument_problem(name: str, value: str) -> str | None:
    """'name: what is wrong' with one argument of a form or query, or None."""
    single_line = name not in MULTILINE and not name.startswith("attribute")
    problem = text_problem(value, single_line)
    if problem is None and len(value) > MAX_DESCRIPTION:
        problem = f"at most {MAX_DESCRIPTION:,} characters"
    return problem and f"{name}: {problem}"


def check_arguments(form: Mapping[str, str]) -> None:
    """Every argument's name and value clean text within bounds, or one 400 naming each."""
    pairs = list(form.items(multi=True) if isinstance(form, MultiDict) else form.items())
    if len(pairs) > MAX_ARGUMENTS:
        raise Open311Error(400, f"at most {MAX_ARGUMENTS} arguments")
    problems: list[str | None] = []
    for name, value in pairs:
        bad_name = text_problem(name, single_line=True) or (
            len(name) > MAX_NAME and f"at most {MAX_NAME} characters")
        if bad_name:
            problems.append(f"an argument's name: {bad_name}")
        else:
            problems.append(argument_problem(name, value))
    found = list(dict.fromkeys(p for p in problems if p))
    if found:
        raise Open311Error(400, *found)


def parse_attributes(form: MultiDict[str, str]) -> dict[str, str | list[str]]:
    """attribute[CODE]=v -> {CODE: "v"}; attribute[CODE][]=v1&attribute[CODE][]=v2 (a
    multivaluelist) -> {CODE: ["v1", "v2"]}."""
    answers: dict[str, list[str]] = {}
    lists, bad = set(), []
    for key in (key for key in form if key.startswith("attribute")):
        match = ATTRIBUTE_KEY.match(key)
        if match is None:
            bad.append(f"{key}: send attribute[CODE]=value, or attribute[CODE][]=value once per "
                       "choice of a multivaluelist")
            continue
        answers.setdefault(match[1], []).extend(form.getlist(key))
        if match[2] or len(answers[match[1]]) > 1:
            lists.add(match[1])
    if bad:
        raise Open311Error(400, *bad)
    return {code: values if code in lists else values[0] for code, values in answers.items()}


def submission_from_form(form: MultiDict[str, str], definition: ServiceDefinition) -> Submission:
    """A POST's form as a Submission, or one 400 that lists every problem at once."""
    check_arguments(form)
    errors: list[str] = []
    location = _location(form, errors)
    description = form_value(form, "description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        errors.append(f"description: at most {MAX_DESCRIPTION:,} characters")
    media_url = form_value(form, "media_url")
    problem = media_url and media_url_problem(media_url, TRUSTED_MEDIA)
    if problem:
        errors.append(f"media_url: {problem}")
    contact = _contact(form, errors)
    answers: dict[str, Any] = {}
    try:
        answers = parse_attributes(form)
        ANSWERS.deserialize(answers)
        definition.check_answers(answers)
    except Open311Error as error:
        errors.extend(error.descriptions)
    except ValidationError as error:
        errors.extend(describe({"attributes": error.messages}))
    except CatalogError as error:
        errors.extend(describe(error.errors))
    if errors:
        raise Open311Error(400, *errors)
    # Open311 makes the description optional; tracking wants one, so the service name stands in.
    return Submission(channel="open311", service_code=definition.code,
                      description=description or definition.name, location=location,
                      answers=answers, media_urls=[media_url] if media_url else [],
                      contact=contact)


def _location(form: Mapping[str, str], errors: list[str]) -> dict[str, Any]:
    lat, long = form_value(form, "lat"), form_value(form, "long")
    address, address_id = form_value(form, "address_string"), form_value(form, "address_id")
    location: dict[str, Any] = {}
    if (lat is None) != (long is None):
        errors.append("lat and long must be sent together")
    elif lat is not None and long is not None:
        for name, text, limit in (("lat", lat, 90), ("long", long, 180)):
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or abs(number) > limit:
                errors.append(f"{name}: a WGS84 coordinate between -{limit} and {limit}")
            location[name] = number
    elif address is None and address_id is None:
        errors.append("a location is required: lat and long, address_string or address_id")
    for name, key, given, limit in (("address_string", "address", address, 300),
                                    ("address_id", "address_id", address_id, 100)):
        if given is not None and len(given) > limit:
            errors.append(f"{name}: at most {limit} characters")
        elif given is not None:
            location[key] = given
    return location


def _contact(form: Mapping[str, str], errors: list[str]) -> dict[str, Any] | None:
    """Who reported, for notifications only (device_id and account_id are not kept)."""
    given = {name: form_value(form, name) for name in CONTACT_FIELDS}
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        return None
    try:
        return CONTACT.load(given)
    except ValidationError as error:
        errors.extend(describe(error.messages))
        return None


def describe(messages: Any) -> list[str]:
    """{field: [message]} (marshmallow, CatalogError) as 'field: message' lines."""
    if not isinstance(messages, Mapping):
        return [str(m) for m in (messages if isinstance(messages, list) else [messages])]
    return [f"{field}: {text}" for field, texts in messages.items()
            for text in (describe(texts) if isinstance(texts, Mapping | list) else [texts])]


def parse_datetime(name: str, value: str) -> datetime:
    """A W3C datetime that says its time zone ('+' decoded to a space from a query is repaired)."""
    text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", value.strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Open311Error(400, f"{name}: {DATE_HINT}") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise Open311Error(400, f"{name}: {DATE_HINT}")
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise Open311Error(400, f"{name}: a date between the years {FIRST_YEAR} and {LAST_YEAR}")
    return moment


def request_window(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The requested_datetime range: the last 90 days unless asked, never more than 90 days (a
    longer range is a 400 rather than a silent cut, so a client never takes part for all)."""
    first = parse_datetime("start_date", start) if start else None
    last = parse_datetime("end_date", end) if end else None
    if first is None:
        return (now - MAX_WINDOW, now) if last is None else (last - MAX_WINDOW, last)
    if last is None:
        return first, first + MAX_WINDOW
    if first > last:
        raise Open311Error(400, "start_date is after end_date")
    if last - first > MAX_WINDOW:
        raise Open311Error(400, "start_date to end_date may not span more than 90 days")
    return first, last


def request_filters(args: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """GET requests' query as tracking's open311_requests filters."""
    check_arguments(args)
    ids = _list(args.get("service_request_id"))
    if ids:  # "This overrides all other arguments."
        if len(ids) > MAX_PAGE_SIZE:
            raise Open311Error(400, f"service_request_id: at most {MAX_PAGE_SIZE} at once")
        return {"folio": ",".join(ids), "limit": len(ids), "order": "opened_at desc"}
    start, end = request_window(form_value(args, "start_date"), form_value(args, "end_date"), now)
    filters: dict[str, Any] = {"opened_from": start.isoformat(), "opened_to": end.isoformat(),
                               "order": "opened_at desc"}
    codes = _list(args.get("service_code"))
    if codes:
        filters["service_code"] = ",".join(codes)
    statuses = set(_list(args.get("status")))
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status: open, closed or both, comma separated")
    if len(statuses) == 1:
        filters["status"] = statuses.pop()
    size, page = page_size(args), _whole(args, "page", 1, 10**9)
    return {**filters, "limit": size, "offset": (page - 1) * size}


def update_filters(args: Mapping[str, str], now: datetime
                   ) -> tuple[dict[str, Any], datetime | None]:
    """servicerequestupdates' query: tracking's open311_updates filters, and the end_date (tracking
    takes none, so it is applied here). Without a start_date: the last day."""
    check_arguments(args)
    end_text, start_text = form_value(args, "end_date"), form_value(args, "start_date")
    end = parse_datetime("end_date", end_text) if end_text else None
    start = (parse_datetime("start_date", start_text) if start_text
             else (end or now) - UPDATES_WINDOW)
    if end is not None and start > end:
        raise Open311Error(400, "start_date is after end_date")
    filters: dict[str, Any] = {"since": start.isoformat(), "limit": page_size(args)}
    codes = _list(args.get("service_code"))
    if codes:
        filters["service_code"] = ",".join(codes)
    return filters, end


def page_size(args: Mapping[str, str]) -> int:
    return _whole(args, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def wants_extensions(args: Mapping[str, str]) -> bool:
    """extended_attributes are on unless a strict client asks extensions=false."""
    return (form_value(args, "extensions") or "true").lower() not in ("false", "0", "no")


def _list(value: str | None) -> list[str]:
    items = [item.strip() for item in (value or "").split(",")]
    return list(dict.fromkeys(item for item in items if item))


def _whole(args: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    text = form_value(args, name) or str(default)
    whole = text.isascii() and text.isdigit() and len(text) <= 12
    if not whole or not 1 <= int(text) <= maximum:
        raise Open311Error(400, f"{name}: a whole number from 1 to {maximum}")
    return int(text)
