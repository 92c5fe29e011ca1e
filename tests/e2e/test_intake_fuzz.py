"""Property-based: whatever a client sends to intake's doors, the answer is a clear 4xx with
field messages (or a folio when the input happens to be valid), never a 5xx, and a refused
request writes nothing, in intake or in tracking's event store.

Inputs are the valid requests of each door, mutated: fields dropped, values replaced with text,
numbers, huge strings and odd Unicode, unknown fields added, bodies that are not JSON at all."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from contextlib import closing

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import bearer

pytestmark = pytest.mark.e2e

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
REFUSED = {400, 401, 403, 404, 409, 413, 415, 422}

POTHOLE_FORM = {"api_key": "expediente-demo-key", "service_code": "bache", "lat": "20.5931",
                "long": "-100.392", "description": "Bache frente a la escuela",
                "attribute[tamano]": "grande"}
OPEN311_KEYS = [*POTHOLE_FORM, "jurisdiction_id", "address_string", "address_id", "email",
                "phone", "first_name", "last_name", "device_id", "account_id", "media_url",
                "attribute[tamano][]", "attribute[color]", "attribute[]", "attribute"]
POTHOLE_JSON = {"service_code": "bache", "description": "Bache frente a la escuela",
                "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"}}

odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "nan", "inf", "-1e400", "1e309", "0x10", "\x00", "🕳️", "null",
                     "../../etc/passwd", "<b>x</b>", "' OR 1=1 --", "x" * 4001, "91", "-181"]),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=8)


def counts(stack) -> tuple[int, int]:
    """(events in tracking's store, submissions in intake's), read from their SQLite files."""
    found = []
    for name, table in (("tracking", "stored_events"), ("intake", "intake_submissions")):
        path = stack.workdir / f"{name}.sqlite"
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            found.append(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    return found[0], found[1]


def check_answer(stack, response: requests.Response, before: tuple[int, int],
                 success: set[int]) -> None:
    assert response.status_code < 500, response.text
    if response.status_code in success:
        return
    assert response.status_code in REFUSED, response.text
    assert counts(stack) == before, f"a refused request ({response.status_code}) wrote"


@st.composite
def open311_forms(draw) -> list[tuple[str, str]]:
    form = dict(POTHOLE_FORM)
    for key in draw(st.lists(st.sampled_from(list(POTHOLE_FORM)), max_size=3, unique=True)):
        del form[key]
    pairs = list(form.items())
    for key in draw(st.lists(st.sampled_from(OPEN311_KEYS), max_size=4)):
        pairs.append((key, draw(odd_text)))
    if draw(st.booleans()):  # an existing field's value replaced
        index = draw(st.integers(0, max(len(pairs) - 1, 0)))
        if pairs:
            pairs[index] = (pairs[index][0], draw(odd_text))
    return pairs


@FUZZ
@given(pairs=open311_forms(), fmt=st.sampled_from(["json", "xml"]))
def test_any_open311_post_gets_a_folio_or_the_specs_error(stack, pairs, fmt):
    before = counts(stack)
    response = requests.post(f"{stack.intake.url}/open311/v2/requests.{fmt}", data=pairs,
                             timeout=30)
    check_answer(stack, response, before, {200, 201})
    if fmt == "json":
        answer = response.json()
        assert isinstance(answer, list) and answer
        if response.status_code >= 400:
            assert all({"code", "description"} <= set(e) for e in answer), answer
    else:
        root = ET.fromstring(response.content)
        assert root.tag == ("errors" if response.status_code >= 400 else "service_requests")


@FUZZ
@given(query=st.dictionaries(st.sampled_from(
    ["service_request_id", "service_code", "start_date", "end_date", "status", "page",
     "page_size", "jurisdiction_id", "updated_since", "bbox", "x"]), odd_text, max_size=4),
    fmt=st.sampled_from(["json", "xml"]))
def test_any_open311_query_gets_a_list_or_the_specs_error(stack, query, fmt):
    response = requests.get(f"{stack.intake.url}/open311/v2/requests.{fmt}", params=query,
                            timeout=30)
    assert response.status_code in {200, 400, 404}, response.text


@st.composite
def app_bodies(draw) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # not even an object, or an arbitrary one
    body = json.loads(json.dumps(POTHOLE_JSON))
    for key in draw(st.lists(st.sampled_from(list(body)), max_size=2, unique=True)):
        del body[key]
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(["top", "location", "answers", "contact"]))
        key = draw(st.sampled_from(["service_code", "description", "lat", "long", "address",
                                    "tamano", "email", "phone", "media_urls", "extra"]))
        value = draw(json_values)
        if target == "top":
            body[key] = value
        else:
            section = body.setdefault(target, {})
            if isinstance(section, dict):
                section[key] = value
    return body


@FUZZ
@given(body=app_bodies(), key=st.one_of(st.uuids().map(str), odd_text))
def test_any_app_post_gets_a_folio_or_field_messages(stack, body, key):
    before = counts(stack)
    try:
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        response = requests.post(f"{stack.intake.url}/api/v1/reports", headers=headers,
                                 data=json.dumps(body), timeout=30)
    except ValueError:  # a header value requests itself refuses to send (a newline)
        return
    check_answer(stack, response, before, {201})
    if response.status_code in (400, 422):
        assert response.json()["errors"], response.text


@FUZZ
@given(body=app_bodies(), channel=st.one_of(st.sampled_from(["phone_070", "window"]), odd_text))
def test_any_staff_entry_gets_a_folio_or_field_messages(stack, body, channel):
    before = counts(stack)
    if isinstance(body, dict):
        body = {**body, "channel": channel}
    response = requests.post(f"{stack.intake.url}/staff/reports", data=json.dumps(body),
                             headers={**bearer("operator"), "Content-Type": "application/json"},
                             timeout=30)
    check_answer(stack, response, before, {201})


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), app_bodies().map(lambda b: json.dumps(b).encode())))
def test_any_body_that_is_not_a_report_gets_400_not_500(stack, raw):
    before = counts(stack)
    for path, headers in (("/api/v1/reports", {"Idempotency-Key": "a" * 16}),
                          ("/chatbot/webhook", {"X-Chatbot-Secret": "expediente-chatbot-dev"})):
        response = requests.post(f"{stack.intake.url}{path}", data=raw, timeout=30,
                                 headers={**headers, "Content-Type": "application/json"})
        if path.startswith("/chatbot"):
            assert response.status_code < 500, response.text
        else:
            check_answer(stack, response, before, {201})
