"""Property-based, on PostgreSQL: whatever a client sends to intake's doors (Open311 POST and
GET requests, servicerequestupdates, the app API and its duplicates query, staff entry, the
portal's form, the chatbot webhook), the answer is a clear 4xx (or a folio when the input happens
to be valid), never a 5xx; a refused request writes nothing in intake or in tracking; and every
view of tracking catches up afterwards (nothing poisoned the projection).

Inputs are each door's valid requests mutated with the whole Unicode range (NUL and lone
surrogates included), extreme dates, huge and deeply nested values, and bodies that are not
JSON at all."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.fuzzing import (
    FUZZ,
    Writes,
    any_value,
    dates,
    form_body,
    hostile_text,
    mutated,
    raw_bodies,
    raw_body,
    send_json,
    views_caught_up,
)
from tests.support import bearer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
POTHOLE_FORM = {"api_key": "expediente-demo-key", "service_code": "bache", "lat": "20.5931",
                "long": "-100.392", "description": "Bache frente a la escuela",
                "attribute[tamano]": "grande"}
OPEN311_KEYS = [*POTHOLE_FORM, "jurisdiction_id", "address_string", "address_id", "email",
                "phone", "first_name", "last_name", "device_id", "account_id", "media_url",
                "attribute[tamano][]", "attribute[carril]", "attribute[]", "attribute"]
POTHOLE = {"service_code": "bache", "description": "Bache frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392, "address": "Av. Juárez 10"},
           "answers": {"tamano": "grande"},
           "contact": {"email": "ana@example.com", "notify_by": ["email"]}}
REPORT_KEYS = ["service_code", "description", "location", "answers", "media_urls", "contact",
               "lat", "long", "address", "address_id", "zipcode", "tamano", "carril", "email",
               "phone", "first_name", "notify_by", "channel", "extra"]
PORTAL_FORM = {"description": "Bache frente a la escuela", "lat": "20.5931", "long": "-100.392",
               "attribute[tamano]": "grande", "confirmar": "1"}
PORTAL_KEYS = [*PORTAL_FORM, "address", "attribute[carril]", "email", "phone", "first_name",
               "last_name", "notify_by", "photo_url", "idempotency_key", "extra"]
CHATBOT = {"X-Chatbot-Secret": "expediente-chatbot-dev"}


@pytest.fixture(scope="module")
def writes(stack) -> Writes:
    return Writes(stack)


@st.composite
def form_pairs(draw, valid: dict[str, str], keys: list[str]) -> list[tuple[str, str]]:
    """A valid form with fields dropped, values replaced and fields added (hostile names too)."""
    form = dict(valid)
    for key in draw(st.lists(st.sampled_from(list(valid)), max_size=2, unique=True)):
        del form[key]
    pairs = list(form.items())
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(keys), hostile_text.map(lambda t: t[:200])))
        pairs.append((name, draw(st.one_of(hostile_text, dates))))
    if pairs and draw(st.booleans()):
        index = draw(st.integers(0, len(pairs) - 1))
        pairs[index] = (pairs[index][0], draw(st.one_of(hostile_text, dates)))
    return pairs


def test_any_open311_post_gets_a_folio_or_the_specs_error(stack, writes):
    @FUZZ
    @given(pairs=form_pairs(POTHOLE_FORM, OPEN311_KEYS), fmt=st.sampled_from(["json", "xml"]))
    def post(pairs, fmt):
        before = writes.now()
        response = requests.post(f"{stack.intake.url}/open311/v2/requests.{fmt}",
                                 data=form_body(pairs), headers=FORM, timeout=60)
        writes.check(response, before, {200, 201})
        if fmt == "json" and response.status_code != 413:
            answer = response.json()
            assert isinstance(answer, list) and answer
        elif response.status_code != 413:
            root = ET.fromstring(response.content)  # well-formed XML, whatever was sent
            assert root.tag == ("errors" if response.status_code >= 400 else "service_requests")

    post()
    views_caught_up(stack)


QUERY_KEYS = ["service_request_id", "service_code", "start_date", "end_date", "status", "page",
              "page_size", "jurisdiction_id", "updated_since", "bbox", "extensions", "x"]


@pytest.mark.parametrize("path", ["requests", "servicerequestupdates"])
def test_any_open311_query_gets_a_list_or_the_specs_error(stack, path):
    @FUZZ
    @given(query=st.lists(st.tuples(st.sampled_from(QUERY_KEYS), st.one_of(dates, hostile_text)),
                          max_size=4), fmt=st.sampled_from(["json", "xml"]))
    def query(query, fmt):
        url = f"{stack.intake.url}/open311/v2/{path}.{fmt}?{form_body(query).decode()}"
        response = requests.get(url, timeout=60)
        assert response.status_code in {200, 400, 404, 414}, response.text[:2000]

    query()


def test_any_single_request_lookup_gets_the_request_or_a_404(stack):
    @FUZZ
    @given(request_id=hostile_text.filter(lambda t: "/" not in t and t not in ("", ".", "..")))
    def lookup(request_id):
        quoted = quote(request_id.encode("utf-8", "surrogatepass"), safe="")
        response = requests.get(f"{stack.intake.url}/open311/v2/requests/{quoted}.json",
                                timeout=60)
        assert response.status_code in {400, 404, 414}, response.text[:2000]

    lookup()


def test_any_app_post_gets_a_folio_or_field_messages(stack, writes):
    @FUZZ
    @given(body=mutated(POTHOLE, REPORT_KEYS), key=st.one_of(st.uuids().map(str), hostile_text))
    def post(body, key):
        before = writes.now()
        try:
            response = send_json("POST", f"{stack.intake.url}/api/v1/reports", body,
                                 {"Idempotency-Key": key})
        except ValueError:  # a header value requests itself refuses to send (a newline)
            return
        writes.check(response, before, {201})
        if response.status_code in (400, 422):
            assert response.json()["errors"], response.text

    post()
    views_caught_up(stack)


def test_any_duplicates_query_gets_reports_or_field_messages(stack):
    @FUZZ
    @given(query=st.lists(st.tuples(st.sampled_from(["service_code", "lat", "long", "radius"]),
                                    st.one_of(hostile_text, st.floats().map(repr))), max_size=4))
    def query(query):
        url = f"{stack.intake.url}/api/v1/duplicates?{form_body(query).decode()}"
        response = requests.get(url, timeout=60)
        assert response.status_code in {200, 400, 414}, response.text[:2000]

    query()


def test_any_staff_entry_gets_a_folio_or_field_messages(stack, writes):
    @FUZZ
    @given(body=mutated({**POTHOLE, "channel": "phone_070"}, REPORT_KEYS))
    def post(body):
        before = writes.now()
        response = send_json("POST", f"{stack.intake.url}/staff/reports", body,
                             bearer_header("operator"))
        writes.check(response, before, {201})

    post()
    views_caught_up(stack)


def test_any_portal_form_gets_a_receipt_or_the_form_with_its_messages(stack, writes):
    @FUZZ
    @given(pairs=form_pairs(PORTAL_FORM, PORTAL_KEYS))
    def post(pairs):
        before = writes.now()
        response = requests.post(f"{stack.intake.url}/reportar/bache", data=form_body(pairs),
                                 headers=FORM, timeout=60)
        writes.check(response, before, {200, 201})
        if response.status_code == 200:  # the open reports nearby, to follow instead
            assert writes.now() == before

    post()
    views_caught_up(stack)


MESSAGE = {"sender": "whatsapp:+5214421230000", "text": "hay un bache",
           "location": {"lat": 20.5931, "long": -100.392}, "message_id": "wamid.1",
           "media_url": "https://fotos.example.mx/bache.jpg"}


def test_any_chatbot_message_gets_replies_or_field_messages(stack, writes):
    @FUZZ
    @given(body=mutated(MESSAGE, [*MESSAGE, "lat", "long", "extra"]), text=any_value)
    def message(body, text):
        if isinstance(body, dict) and "text" in body and isinstance(text, str):
            body["text"] = text
        before = writes.now()
        response = send_json("POST", f"{stack.intake.url}/chatbot/webhook", body, CHATBOT)
        writes.check(response, before, {200})

    message()
    views_caught_up(stack)


def test_any_body_that_is_not_a_request_gets_a_4xx_not_a_5xx(stack, writes):
    doors = [("/api/v1/reports", {"Idempotency-Key": "a" * 16}), ("/chatbot/webhook", CHATBOT),
             ("/staff/reports", bearer_header("operator"))]

    @FUZZ
    @given(raw=raw_bodies)
    def post(raw):
        body = raw_body(raw)
        for path, headers in doors:
            before = writes.now()
            response = send_json("POST", f"{stack.intake.url}{path}", None, headers, raw=body)
            writes.check(response, before, set())

    post()


def bearer_header(role: str) -> dict[str, str]:
    return {"Authorization": bearer(role)["authorization"]}
