"""Intake's real entrypoints without a broker: the app API, staff entry, Open311, the chatbot and
the portal's folio page, called on a worker with intake's own store, catalog and settings, and a
fake of tracking that answers, refuses with the contracts' codes or does not answer at all."""

from __future__ import annotations

from typing import Any

import pytest
from nameko.dependency_providers import Config

from services.intake import schemas
from services.intake.application import IntakeApplication
from services.intake.dependencies import TrackingPort, seed_catalog
from services.intake.open311.http import Open311Settings
from services.intake.portal.render import PortalTemplates
from services.intake.service import IntakeService
from services.intake.store import IntakeStore
from services.intake.uploads import Uploads
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.chassis.photos import Photos
from shared.chassis.rpcclient import RpcTimeout
from shared.chassis.runtime import app_env
from shared.chassis.sqlstore import SqlStore
from shared.contracts.errors import RETRY_AFTER_SECONDS, WireError
from tests.support import ROOT
from tests.workers import Host, http_answer

FOLIO = "QRO-2026-000123"
POTHOLE = {"service_code": "bache", "description": "Bache profundo frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"}}
PUBLIC_VIEW = {"folio": FOLIO, "status": "open", "timeline": []}
ROW = {"folio": FOLIO, "service_code": "bache", "service_name": "Bache", "status": "open",
       "step": "received", "step_label": "Recibido", "resolution": None,
       "resolution_label": None, "department": "obras_publicas", "description": "Bache profundo",
       "address": None, "lat": 20.5931, "long": -100.392,
       "opened_at": "2026-03-01T16:00:00+00:00", "updated_at": "2026-03-01T16:00:00+00:00",
       "due_at": None, "closed_at": None, "media_url": None, "status_notes": ""}
DOWN = [RpcTimeout("tracking.open_report did not answer in 10 s"), WireError("unavailable")]


class FakeTracking:
    """Tracking as intake's RemoteService reaches it: each method answers what the test set, or
    raises it (a WireError with tracking's code, as the RPC client raises it; RpcTimeout)."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {"open_report": self.opened}
        self.calls: list[tuple[str, tuple[Any, ...], str | None]] = []

    def call(self, method: str, *args: Any, on_behalf_of: str | None = None) -> Any:
        self.calls.append((method, args, on_behalf_of))
        answer = self.answers[method]
        if isinstance(answer, BaseException):
            raise answer
        return answer(*args) if callable(answer) else answer

    def opened(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"folio": FOLIO, "access_token": payload.get("access_token") or "t" * 24,
                "opened_at": "2026-03-01T10:00:00-06:00", "due_at": None, "version": 1}


class FakeContacts:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def subscribe(self, request: dict[str, Any]) -> None:
        self.requests.append(request)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    folder = tmp_path_factory.mktemp("intake")
    config = load_config(ROOT / "services/intake/config.yaml",
                         SQLITE_DBNAME=str(folder / "intake.sqlite"), PHOTO_DIR=str(folder))
    schemas.configure(config)
    host = Host(IntakeService, config).provide(
        auth=Auth(), config=Config(), open311=Open311Settings(), portal=PortalTemplates(),
        photos=Photos(), uploads=Uploads())
    host.store = IntakeStore(SqlStore.from_env(app_env(config), name="intake"))
    host.store.seed(seed_catalog())
    yield host
    host.store.sql.close()


@pytest.fixture
def tracking(host):
    """The fake tracking behind a real TrackingPort, in an application on intake's store."""
    fake, contacts = FakeTracking(), FakeContacts()
    host.given["intake"] = IntakeApplication(host.store, TrackingPort(fake), contacts,
                                             status_url=host.config["STATUS_PAGE_URL"])
    fake.contacts = contacts
    yield fake
    host.given.clear()


def token(host, role: str, **claims: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config, **claims)


def error_of(answer) -> tuple[int, str]:
    return answer.status_code, answer.get_json()["error"]["code"]


def app_report(host, body=POTHOLE, key: str | None = "3f0c9a7e-app-key"):
    headers = {"Idempotency-Key": key} if key else {}
    return http_answer(host, "POST", "/api/v1/reports", json=body, headers=headers)


# ---- the app API -------------------------------------------------------------------------------


def test_a_citizen_reports_from_the_app_and_is_subscribed(host, tracking):
    body = {**POTHOLE, "contact": {"email": "ana@example.com"}}
    answer = app_report(host, body, key="a1b2c3d4-first-report")
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json()["folio"] == FOLIO and answer.get_json()["subscribed"] is True
    method, (payload,), on_behalf_of = tracking.calls[0]
    assert (method, payload["channel"], payload["department"]) == (
        "open_report", "app", "obras_publicas")
    assert on_behalf_of is None  # intake opens it as itself
    assert tracking.contacts.requests[0]["folio"] == FOLIO


@pytest.mark.parametrize(("body", "key", "field"), [
    ({**POTHOLE, "description": ""}, "a1b2c3d4-empty", "description"),
    ({**POTHOLE, "service_code": "ovni"}, "a1b2c3d4-ovni", "service_code"),
    ({**POTHOLE, "answers": {}}, "a1b2c3d4-unanswered", "tamano"),
    (POTHOLE, None, "Idempotency-Key"),
])
def test_a_report_intake_refuses_is_a_400_that_never_reaches_tracking(host, tracking, body,
                                                                      key, field):
    answer = app_report(host, body, key)
    assert error_of(answer) == (400, "invalid_input")
    assert field in str(answer.get_json()["errors"])
    assert tracking.calls == []


@pytest.mark.parametrize("refusal", [
    WireError("invalid_input", fields={"location": ["outside the municipality"]}),
    WireError("forbidden", "this needs one of the roles operator"),
])
def test_what_tracking_refuses_by_code_the_citizen_gets_with_the_same_code(host, tracking,
                                                                           refusal):
    tracking.answers["open_report"] = refusal
    answer = app_report(host, key=f"a1b2c3d4-{refusal.code}")
    assert error_of(answer) == (refusal.status, refusal.code)


@pytest.mark.parametrize("down", DOWN)
def test_tracking_down_is_a_503_that_says_when_to_retry(host, tracking, down):
    tracking.answers["open_report"] = down
    answer = app_report(host, key=f"a1b2c3d4-down-{type(down).__name__}")
    assert error_of(answer) == (503, "unavailable")
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_the_app_reads_a_folio_and_an_unknown_one_is_a_404(host, tracking):
    tracking.answers["get_report"] = lambda folio, token: PUBLIC_VIEW if folio == FOLIO else None
    found = http_answer(host, "GET", f"/api/v1/reports/{FOLIO}")
    assert found.status_code == 200 and found.get_json() == PUBLIC_VIEW
    missing = http_answer(host, "GET", "/api/v1/reports/QRO-2026-999999")
    assert error_of(missing) == (404, "not_found")
    tracking.answers["get_report"] = WireError("forbidden", "the access token does not open it")
    wrong = http_answer(host, "GET", f"/api/v1/reports/{FOLIO}",
                        headers={"X-Access-Token": "nope"})
    assert error_of(wrong) == (403, "forbidden")


def test_the_catalog_and_nearby_reports(host, tracking):
    services = http_answer(host, "GET", "/api/v1/services").get_json()["services"]
    assert "bache" in [s["code"] for s in services]
    assert error_of(http_answer(host, "GET", "/api/v1/services/ovni")) == (404, "not_found")
    tracking.answers["open311_requests"] = [ROW]
    nearby = http_answer(host, "GET", "/api/v1/duplicates", query_string={
        "service_code": "bache", "lat": "20.5931", "long": "-100.3921"})
    assert [r["folio"] for r in nearby.get_json()["reports"]] == [FOLIO]
    bad = http_answer(host, "GET", "/api/v1/duplicates", query_string={"service_code": "bache"})
    assert error_of(bad) == (400, "invalid_input")


# ---- staff -------------------------------------------------------------------------------------


def test_an_operator_enters_a_call_and_tracking_records_her_as_the_actor(host, tracking):
    operator = token(host, "operator")
    answer = http_answer(host, "POST", "/staff/reports", token=operator,
                         json={**POTHOLE, "channel": "phone_070"})
    assert answer.status_code == 201
    method, (payload,), on_behalf_of = tracking.calls[0]
    assert payload["channel"] == "phone_070" and on_behalf_of == f"Bearer {operator}"


@pytest.mark.parametrize(("role", "status", "code"), [
    ("crew", 403, "forbidden"), ("billing_clerk", 403, "forbidden"),
    (None, 401, "unauthenticated")])
def test_staff_doors_refuse_who_is_not_staff(host, tracking, role, status, code):
    who = role and token(host, role, crew_id="C-07")
    for method, path, body in (("POST", "/staff/reports", {**POTHOLE, "channel": "window"}),
                               ("GET", f"/staff/reports/{FOLIO}", None)):
        answer = http_answer(host, method, path, token=who, json=body)
        assert error_of(answer) == (status, code)
    assert tracking.calls == []


def test_staff_look_up_a_folio_and_tracking_codes_pass_through(host, tracking):
    operator = token(host, "operator")
    tracking.answers["get_report_staff"] = lambda folio: {**PUBLIC_VIEW, "internal": []}
    found = http_answer(host, "GET", f"/staff/reports/{FOLIO}", token=operator)
    assert found.status_code == 200 and found.get_json()["folio"] == FOLIO
    tracking.answers["get_report_staff"] = None
    assert error_of(http_answer(host, "GET", f"/staff/reports/{FOLIO}", token=operator)) == (
        404, "not_found")
    tracking.answers["run_command"] = WireError("report_closed", "the report is closed")
    closed = http_answer(host, "POST", f"/staff/reports/{FOLIO}/mark_duplicate", token=operator,
                         json={"duplicate_of": "QRO-2026-000100"})
    assert error_of(closed) == (409, "report_closed")
    tracking.answers["run_command"] = RpcTimeout("tracking.run_command did not answer")
    down = http_answer(host, "POST", f"/staff/reports/{FOLIO}/mark_duplicate", token=operator,
                       json={"duplicate_of": "QRO-2026-000100"})
    assert error_of(down) == (503, "unavailable") and down.headers["Retry-After"]


# ---- Open311, the chatbot, the portal's folio page ---------------------------------------------


def open311_post(host, **form: str):
    return http_answer(host, "POST", "/open311/v2/requests.json", data={
        "service_code": "bache", "lat": "20.5931", "long": "-100.392",
        "attribute[tamano]": "grande", "description": "Bache profundo", **form})


def test_an_open311_client_posts_with_its_key_and_reads_requests(host, tracking):
    receipt = open311_post(host, api_key="expediente-demo-key")
    assert receipt.status_code == 200 and receipt.get_json()[0]["service_request_id"] == FOLIO
    tracking.answers["open311_requests"] = [ROW]
    rows = http_answer(host, "GET", "/open311/v2/requests.json")
    assert [r["service_request_id"] for r in rows.get_json()] == [FOLIO]
    tracking.answers["open311_requests"] = []
    missing = http_answer(host, "GET", "/open311/v2/requests/QRO-2026-999999.json")
    assert missing.status_code == 404 and missing.get_json()[0]["code"] == 404


def test_open311_refusals_and_outages_in_georeport_format(host, tracking):
    for form, status in (({}, 403), ({"api_key": "wrong-key"}, 403),
                         ({"api_key": "expediente-demo-key", "lat": "north"}, 400)):
        answer = open311_post(host, **form)
        assert answer.status_code == status and answer.get_json()[0]["code"] == status
    tracking.answers["open_report"] = RpcTimeout("tracking.open_report did not answer")
    down = open311_post(host, api_key="expediente-demo-key")
    assert down.status_code == 503 and down.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_the_chatbot_answers_a_message_with_the_secret_and_refuses_one_without(host, tracking):
    message = {"sender": "whatsapp:+5214421234567", "text": "hay un bache",
               "message_id": "wamid.entrypoint.1"}
    answered = http_answer(host, "POST", "/chatbot/webhook", json=message,
                           headers={"X-Chatbot-Secret": host.config["CHATBOT_SECRET"]})
    assert answered.status_code == 200 and answered.get_json()["replies"]
    refused = http_answer(host, "POST", "/chatbot/webhook", json=message)
    assert error_of(refused) == (401, "unauthenticated")
    bad = http_answer(host, "POST", "/chatbot/webhook", json={"text": "hola"},
                      headers={"X-Chatbot-Secret": host.config["CHATBOT_SECRET"]})
    assert error_of(bad) == (400, "invalid_input")


def test_a_folio_page_goes_to_tracking_s_status_page_and_following_needs_the_report(
        host, tracking):
    page = http_answer(host, "GET", f"/folio/{FOLIO}", query_string={"token": "t0k3n"})
    assert page.status_code == 303
    assert page.headers["Location"] == f"{host.config['STATUS_PAGE_URL']}/{FOLIO}?token=t0k3n"
    assert http_answer(host, "GET", "/folio/no-es-un-folio").status_code == 404
    tracking.answers["get_report"] = None
    assert http_answer(host, "GET", "/seguir/QRO-2026-999999").status_code == 404
    tracking.answers["get_report"] = WireError("unavailable")
    down = http_answer(host, "GET", f"/seguir/{FOLIO}")
    assert down.status_code == 503 and down.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_readiness_counts_the_catalog(host, tracking):
    answer = http_answer(host, "GET", "/readyz")
    assert answer.status_code == 200 and answer.get_json()["catalog"] > 0
