"""Property-based, on PostgreSQL: whatever staff clients send to tracking's HTTP commands (open a
report, every command on a report with a token of a role that may run it, the citizen's
confirm/dispute, the staff search), the answer is never a 5xx, a refused command stores no event,
and the views catch up afterwards: nothing a client sent poisons the projection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from shared.chassis.auth import mint_token
from tests.e2e.fuzzing import (
    FUZZ,
    Writes,
    dates,
    form_body,
    hostile_text,
    mutated,
    raw_bodies,
    raw_body,
    send_json,
    views_caught_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CREW = "C-07"
POTHOLE = {"service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
           "description": "Bache frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392, "address": "Av. Juárez 10"},
           "attributes": {"tamano": "grande"}, "media_urls": ["https://fotos.example/a.jpg"],
           "channel": "window", "sla_hours": 72}
OPEN_KEYS = [*POTHOLE, "request_key", "access_token", "lat", "long", "address", "address_id",
             "extra"]


def recently() -> str:
    """A moment ago by the crew's clock (and after the report was opened)."""
    return (datetime.now(UTC) - timedelta(milliseconds=1)).isoformat()


# name -> (a valid body, the role that runs it); field steps carry the crew's own clock.
COMMANDS = {
    "triage": ({"department": "obras_publicas", "priority": "high", "service_code": "bache"},
               "supervisor"),
    "assign": ({"crew_id": CREW}, "supervisor"),
    "dispatch_crew": ({"step_id": "s-1", "occurred_at": "RECENTLY"}, "crew"),
    "set_en_route": ({"step_id": "s-2", "occurred_at": "RECENTLY"}, "crew"),
    "arrive": ({"step_id": "s-3", "occurred_at": "RECENTLY"}, "crew"),
    "add_photo": ({"url": "https://fotos.example/antes.jpg", "caption": "Antes",
                   "stage": "before", "occurred_at": "RECENTLY"}, "crew"),
    "log_materials": ({"items": [{"code": "MEZ-ASF", "quantity": 0.5, "unit": "m3",
                                  "description": "Mezcla asfáltica"}],
                       "occurred_at": "RECENTLY"}, "crew"),
    "complete_work": ({"notes": "Bache rellenado", "occurred_at": "RECENTLY"}, "crew"),
    "close_report": ({"resolution": "fixed", "notes": "Listo"}, "supervisor"),
    "reopen": ({"reason": "Se volvió a abrir"}, "supervisor"),
    "mark_duplicate": ({"duplicate_of": "FOLIO"}, "supervisor"),
    "add_comment": ({"text": "Revisado por supervisión", "visibility": "public"}, "operator"),
    "confirm": ({"access_token": "TOKEN", "comment": "Gracias"}, None),
    "dispute": ({"access_token": "TOKEN", "comment": "Sigue igual"}, None),
}
KEYS = ["channel", "step_id", "occurred_at", "url", "caption", "stage", "items", "code",
        "quantity", "unit", "notes", "resolution", "reason", "text", "visibility",
        "duplicate_of", "crew_id", "department", "priority", "service_code", "comment", "extra"]


def auth(role: str | None) -> dict[str, str]:
    if role is None:
        return {}
    crew = {"crew_id": CREW} if role == "crew" else {}
    return {"Authorization": f"Bearer {mint_token(f'fuzz-{role}', (role,), **crew)}"}


@pytest.fixture(scope="module")
def writes(stack) -> Writes:
    return Writes(stack)


@pytest.fixture(scope="module")
def reports(stack) -> list[dict[str, str]]:
    """Reports at several steps, so that many commands find a report they apply to."""
    opened = []
    walks = [[], ["triage"], ["triage", "assign"], ["assign", "dispatch_crew", "set_en_route",
                                                    "arrive"],
             ["assign", "dispatch_crew", "set_en_route", "arrive", "complete_work",
              "close_report"]]
    for walk in walks:
        response = send_json("POST", f"{stack.tracking.url}/reports", POTHOLE, auth("operator"))
        assert response.status_code == 201, response.text
        report = response.json()
        for name in walk:
            body, role = COMMANDS[name]
            answer = send_json("POST", f"{stack.tracking.url}/reports/{report['folio']}/{name}",
                               fill(body, report), auth(role))
            assert answer.status_code == 200, (name, answer.text)
        opened.append(report)
    return opened


def fill(body: dict, report: dict[str, str]) -> dict:
    placeholders = {"RECENTLY": recently(), "TOKEN": report["access_token"],
                    "FOLIO": report["folio"]}
    return {key: placeholders.get(value, value) if isinstance(value, str) else value
            for key, value in body.items()}


def test_any_report_a_staff_client_opens_is_stored_whole_or_refused(stack, writes):
    @FUZZ
    @given(body=mutated(POTHOLE, OPEN_KEYS))
    def post(body):
        before = writes.now()
        response = send_json("POST", f"{stack.tracking.url}/reports", body, auth("operator"))
        writes.check(response, before, {201})

    post()
    views_caught_up(stack)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_any_command_is_applied_or_refused_without_a_trace(stack, writes, reports, name):
    valid, role = COMMANDS[name]

    @FUZZ
    @given(data=st.data(), which=st.integers(0, len(reports) - 1),
           other=st.integers(0, len(reports) - 1), bad_folio=st.integers(0, 9))
    def run(data, which, other, bad_folio):
        report = reports[which]
        body = data.draw(mutated(fill(valid, reports[other]), KEYS))
        folio = report["folio"]
        if bad_folio == 0:
            text = data.draw(hostile_text.filter(lambda t: t not in ("", ".", "..")))
            folio = quote(text.encode("utf-8", "surrogatepass"), safe="")
        before = writes.now()
        response = send_json("POST", f"{stack.tracking.url}/reports/{folio}/{name}", body,
                             auth(role))
        writes.check(response, before, {200})

    run()
    views_caught_up(stack)


SEARCH_KEYS = ["status", "department", "crew_id", "service_code", "step", "folio", "opened_from",
               "opened_to", "updated_since", "bbox", "limit", "offset", "order", "x"]


def test_any_staff_search_gets_reports_or_field_messages(stack):
    @FUZZ
    @given(query=st.lists(st.tuples(st.sampled_from(SEARCH_KEYS),
                                    st.one_of(dates, hostile_text)), max_size=4))
    def search(query):
        url = f"{stack.tracking.url}/reports?{form_body(query).decode()}"
        response = requests.get(url, headers=auth("supervisor"), timeout=60)
        assert response.status_code in {200, 400, 414}, response.text[:2000]

    search()


def test_any_body_that_is_not_a_command_gets_a_4xx_not_a_5xx(stack, writes, reports):
    @FUZZ
    @given(raw=raw_bodies, name=st.sampled_from(list(COMMANDS)))
    def post(raw, name):
        for path, role in (("/reports", "operator"),
                           (f"/reports/{reports[0]['folio']}/{name}", COMMANDS[name][1])):
            before = writes.now()
            response = send_json("POST", f"{stack.tracking.url}{path}", None, auth(role),
                                 raw=raw_body(raw))
            writes.check(response, before, {200, 201})  # an empty body is {}

    post()
