"""Every door refuses hostile text, dates, sizes and shapes with a clear 400 and writes nothing, on
PostgreSQL (which refuses U+0000 where SQLite stored it): the cases of the hardening issue, one by
one. The property-based tests (test_intake_fuzz, test_tracking_fuzz) look for the ones not
listed here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from tests.e2e.fuzzing import Writes, deep, form_body, send_json, views_caught_up
from tests.e2e.test_tracking_fuzz import POTHOLE as OPEN_REPORT
from tests.e2e.test_tracking_fuzz import auth
from tests.support import bearer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

NUL = "Bache\x00 frente a la escuela"
SURROGATE = "Bache \ud800 frente a la escuela"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CHATBOT = {"X-Chatbot-Secret": "expediente-chatbot-dev"}
APP_REPORT = {"service_code": "bache", "description": "Bache frente a la escuela",
              "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"}}
OPEN311_FORM = [("api_key", "expediente-demo-key"), ("service_code", "bache"),
                ("lat", "20.5931"), ("long", "-100.392"), ("attribute[tamano]", "grande")]
PORTAL_FORM = [("lat", "20.5931"), ("long", "-100.392"), ("attribute[tamano]", "grande"),
               ("confirmar", "1")]


@pytest.fixture(scope="module")
def writes(stack) -> Writes:
    return Writes(stack)


@pytest.fixture(scope="module")
def report(stack) -> dict[str, str]:
    """A report assigned to crew C-07, on site."""
    opened = send_json("POST", f"{stack.tracking.url}/reports", OPEN_REPORT, auth("operator"))
    assert opened.status_code == 201, opened.text
    folio = opened.json()["folio"]
    for name, role in (("assign", "supervisor"), ("dispatch_crew", "crew"),
                       ("set_en_route", "crew"), ("arrive", "crew")):
        body = {"crew_id": "C-07"} if name == "assign" else {}
        response = send_json("POST", f"{stack.tracking.url}/reports/{folio}/{name}", body,
                             auth(role))
        assert response.status_code == 200, response.text
    return opened.json()


def refused(writes: Writes, send, field: str | None = None,
            statuses: tuple[int, ...] = (400,)) -> requests.Response:
    """Send; the answer is a 400 naming `field`, and nothing was written."""
    before = writes.now()
    response = send()
    assert response.status_code in statuses, response.text[:2000]
    if field is not None:
        assert field in response.text, response.text[:2000]
    assert writes.now() == before
    return response


def doors(stack, description: str):
    """(door, request that sends `description`) for every door that takes one. A form cannot
    carry a lone surrogate: its invalid UTF-8 bytes are read as U+FFFD, a character like any."""
    intake, tracking = stack.intake.url, stack.tracking.url
    app = {**APP_REPORT, "description": description}
    forms = description != SURROGATE
    if forms:
        yield "open311", lambda: requests.post(
            f"{intake}/open311/v2/requests.json", headers=FORM, timeout=30,
            data=form_body([*OPEN311_FORM, ("description", description)]))
    yield "app", lambda: send_json("POST", f"{intake}/api/v1/reports", app,
                                   {"Idempotency-Key": "edge-0001-" + str(len(description))})
    yield "staff", lambda: send_json("POST", f"{intake}/staff/reports",
                                     {**app, "channel": "phone_070"},
                                     {"Authorization": bearer("operator")["authorization"]})
    if forms:
        yield "portal", lambda: requests.post(
            f"{intake}/reportar/bache", headers=FORM, timeout=30,
            data=form_body([*PORTAL_FORM, ("description", description)]))
    yield "chatbot", lambda: send_json("POST", f"{intake}/chatbot/webhook",
                                       {"sender": "whatsapp:+5214421239999",
                                        "text": description}, CHATBOT)
    yield "tracking", lambda: send_json("POST", f"{tracking}/reports",
                                        {**OPEN_REPORT, "description": description},
                                        auth("operator"))


@pytest.mark.parametrize("description", [NUL, SURROGATE, "Bache \x1b[2J", "Bache \x7f\x85"])
def test_a_description_with_a_nul_or_a_lone_surrogate_is_a_400_at_every_door(
        stack, writes, description):
    for door, send in doors(stack, description):
        response = refused(writes, send)
        if door == "portal":
            assert "caracteres invisibles o de control" in response.text
        elif door == "open311":  # the spec's errors: a list of {code, description}
            assert response.json()[0]["description"].startswith("description: ")
        else:  # the field, or the body (the JSON reader refuses lone surrogates outright)
            assert any(name in response.json()["errors"] for name in
                       ("description", "text", "_body")), (door, response.text)
    views_caught_up(stack)


def test_an_address_or_a_name_with_a_nul_is_a_400(stack, writes):
    intake = stack.intake.url
    refused(writes, lambda: send_json(
        "POST", f"{intake}/api/v1/reports",
        {**APP_REPORT, "location": {"address": "Av. Juárez\x00 10"}},
        {"Idempotency-Key": "edge-address-1"}), "address")
    refused(writes, lambda: send_json(
        "POST", f"{intake}/api/v1/reports",
        {**APP_REPORT, "contact": {"first_name": "Ana\x00", "email": "ana@example.com"}},
        {"Idempotency-Key": "edge-name-0001"}), "first_name")
    refused(writes, lambda: requests.post(
        f"{intake}/open311/v2/requests.json", headers=FORM, timeout=30,
        data=form_body([*OPEN311_FORM, ("address_string", "Av.\x00 Juárez")])),
        "address_string")


@pytest.mark.parametrize("name, body", [
    ("add_comment", {"text": NUL}), ("complete_work", {"notes": NUL}),
    ("add_photo", {"url": "https://fotos.example/a.jpg", "caption": SURROGATE}),
    ("log_materials", {"items": [{"code": "MEZ\x00", "quantity": 1}]}),
    ("arrive", {"step_id": "s\x00"}),
])
def test_a_crew_or_staff_command_with_hostile_text_is_a_400(stack, writes, report, name, body):
    role = "operator" if name == "add_comment" else "crew"
    refused(writes, lambda: send_json(
        "POST", f"{stack.tracking.url}/reports/{report['folio']}/{name}", body, auth(role)))


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                    "1999-01-01T00:00:00Z"])
def test_extreme_dates_in_a_query_are_a_400(stack, moment):
    for name in ("opened_from", "opened_to", "updated_since"):
        response = requests.get(f"{stack.tracking.url}/reports",
                                params={name: moment}, headers=auth("supervisor"), timeout=30)
        assert response.status_code == 400 and name in response.text, response.text
    for path, name in (("requests", "start_date"), ("requests", "end_date"),
                       ("servicerequestupdates", "start_date"),
                       ("servicerequestupdates", "end_date")):
        response = requests.get(f"{stack.intake.url}/open311/v2/{path}.json",
                                params={name: moment}, timeout=30)
        assert response.status_code == 400, response.text
        assert "between the years 2000 and 2100" in response.text


def test_a_crew_step_said_to_happen_far_from_now_is_a_400(stack, writes, report):
    url = f"{stack.tracking.url}/reports/{report['folio']}/add_photo"
    photo = {"url": "https://fotos.example/durante.jpg"}
    now = datetime.now(UTC)
    for moment in ("0001-01-01T00:00:00+14:00", (now + timedelta(hours=1)).isoformat(),
                   (now - timedelta(days=31)).isoformat(), "2026-03-01T08:00:00"):
        refused(writes, lambda m=moment: send_json("POST", url, {**photo, "occurred_at": m},
                                                   auth("crew")), "occurred_at")
    synced = send_json("POST", url, {**photo, "occurred_at": datetime.now(UTC).isoformat()},
                       auth("crew"))
    assert synced.status_code == 200, synced.text


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", "data:image/png;base64,AA",
                                 "http://fotos.example/a.jpg", "https://ana:pw@fotos.example/a",
                                 "https://fotos.example/" + "a" * 2100])
def test_a_photo_url_that_is_not_https_or_ours_is_a_400_everywhere(stack, writes, report, url):
    intake = stack.intake.url
    refused(writes, lambda: send_json(
        "POST", f"{stack.tracking.url}/reports/{report['folio']}/add_photo", {"url": url},
        auth("crew")), "url")
    refused(writes, lambda: send_json(
        "POST", f"{stack.tracking.url}/reports", {**OPEN_REPORT, "media_urls": [url]},
        auth("operator")), "media_urls")
    refused(writes, lambda: send_json(
        "POST", f"{intake}/api/v1/reports", {**APP_REPORT, "media_urls": [url]},
        {"Idempotency-Key": "edge-url-0001"}), "media_urls")
    refused(writes, lambda: requests.post(
        f"{intake}/open311/v2/requests.json", headers=FORM, timeout=30,
        data=form_body([*OPEN311_FORM, ("media_url", url)])), "media_url")
    refused(writes, lambda: send_json("POST", f"{intake}/chatbot/webhook", {
        "sender": "whatsapp:+5214421239998", "media_url": url}, CHATBOT), "media_url")


def test_our_own_media_urls_are_accepted_over_plain_http_in_development(stack):
    url = f"{stack.intake.url}/media/{'3f2a' * 8}.jpg"  # as the photo store names them
    response = send_json("POST", f"{stack.intake.url}/api/v1/reports",
                         {**APP_REPORT, "media_urls": [url]}, {"Idempotency-Key": "edge-own-1"})
    assert response.status_code == 201, response.text
    folio = response.json()["folio"]
    view = requests.get(f"{stack.tracking.url}/reports/{folio}", timeout=30).json()
    assert view["media_urls"] == [url]


def test_a_megabyte_of_answers_is_a_400(stack, writes):
    big = {f"q{i}": "x" * 4000 for i in range(250)}
    for attributes in (big, {"q": "x" * 1_000_000}):  # 413 where the body limit is lower
        refused(writes, lambda a=attributes: send_json(
            "POST", f"{stack.tracking.url}/reports", {**OPEN_REPORT, "attributes": a},
            auth("operator")), statuses=(400, 413))
    refused(writes, lambda: send_json("POST", f"{stack.tracking.url}/reports",
                                      {**OPEN_REPORT, "attributes": {f"q{i}": 1 for i in
                                                                     range(51)}},
                                      auth("operator")), "attributes")
    refused(writes, lambda: send_json("POST", f"{stack.intake.url}/api/v1/reports",
                                      {**APP_REPORT, "answers": {"tamano": ["grande"] * 100}},
                                      {"Idempotency-Key": "edge-answers-1"}), "answers")


def test_numbers_are_finite_and_coordinates_in_range(stack, writes):
    for location in ({"lat": 91, "long": 0}, {"lat": 0, "long": 180.5}):
        refused(writes, lambda loc=location: send_json(
            "POST", f"{stack.intake.url}/api/v1/reports", {**APP_REPORT, "location": loc},
            {"Idempotency-Key": "edge-number-1"}), "location")
    refused(writes, lambda: send_json(
        "POST", f"{stack.tracking.url}/reports", None, auth("operator"),
        raw=json.dumps(OPEN_REPORT)[:-1] + ', "sla_hours": NaN}'))
    refused(writes, lambda: requests.get(
        f"{stack.tracking.url}/reports", params={"bbox": "nan,0,1,1"}, headers=auth("supervisor"),
        timeout=30), "bbox")


# ---- the HTTP error layer's part (shared/chassis/http.py) ---------------------------------------


def test_a_deeply_nested_body_is_a_400(stack, writes):
    for url, headers in ((f"{stack.intake.url}/api/v1/reports", {"Idempotency-Key": "edge-deep"}),
                         (f"{stack.tracking.url}/reports", auth("operator"))):
        refused(writes, lambda u=url, h=headers: send_json("POST", u, None, h, raw=deep(20_000)))


def test_a_twenty_megabyte_body_is_a_413(stack, writes):
    body = '{"description": "' + "x" * 20_000_000 + '"}'
    for url, headers in ((f"{stack.intake.url}/api/v1/reports", {"Idempotency-Key": "edge-big"}),
                         (f"{stack.tracking.url}/reports", auth("operator"))):
        before = writes.now()
        try:
            response = send_json("POST", url, None, headers, raw=body)
        except requests.ConnectionError:  # refused before the body was read: as good as a 413
            continue
        assert response.status_code == 413, response.text[:500]
        assert writes.now() == before


def test_a_folio_with_a_nul_in_the_path_is_a_404_not_a_500(stack):
    folio = quote("QRO-2026-\x00", safe="")
    assert requests.get(f"{stack.tracking.url}/reports/{folio}", timeout=30).status_code in (
        400, 404)
    assert requests.get(f"{stack.intake.url}/api/v1/reports/{folio}", timeout=30).status_code \
        in (400, 404)
