"""Tracking's real entrypoints without a broker: every RPC method and the JSON doors, called on a
worker with the service's own runtime (a SQLite event store, the projector following it) and the
caller's token, answering as the wire would: the result, or the code and status of the refusal."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import OperationalError
from nameko.dependency_providers import Config

from services.tracking.dependencies import TrackingRuntime
from services.tracking.service import TrackingService
from shared.chassis.auth import Auth, mint_token
from shared.chassis.config import load_config
from shared.contracts.errors import RETRY_AFTER_SECONDS, WireError
from tests.support import ROOT
from tests.workers import Host, http_answer, rpc_reply

POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras",
    "description": "Bache profundo frente a la escuela", "channel": "phone_070",
    "location": {"lat": 20.5931, "long": -100.392, "address": "Av. Juárez 10, Centro"},
    "sla_hours": 72,
}
TRIAGE = {"department": "obras", "priority": "high", "service_code": "bache"}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking")
    config = load_config(ROOT / "services/tracking/config.yaml",
                         SQLITE_DBNAME=str(folder / "tracking.sqlite"), RELAY_ENABLED="false",
                         PROJECTION_COALESCE=0, LEADERSHIP_POLL_INTERVAL=0.1)
    host = Host(TrackingService, config).provide(tracking=TrackingRuntime(), auth=Auth(),
                                                 config=Config()).start()
    yield host
    host.stop()


def token(host, role: str, **claims: str) -> str:
    return mint_token(f"ana-{role}", (role,), config=host.config, **claims)


def opened(host, **changes) -> dict:
    return rpc_reply(host, "open_report", {**POTHOLE, **changes}, token=token(host, "operator"))


def refusal(host, method: str, *args, token: str | None = None) -> WireError:
    with pytest.raises(WireError) as refused:
        rpc_reply(host, method, *args, token=token)
    return refused.value


def assigned(host, crew: str = "C-07") -> dict:
    report = opened(host)
    supervisor = token(host, "supervisor", department="obras")
    rpc_reply(host, "run_command", "triage", report["folio"], TRIAGE, token=supervisor)
    rpc_reply(host, "run_command", "assign", report["folio"], {"crew_id": crew}, token=supervisor)
    return report


@pytest.fixture
def store_away(host, monkeypatch):
    """The event store answers every read and write with the driver's error, wrapped."""
    recorder = host.providers["tracking"].app.recorder

    def away(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    for method in ("insert_events", "select_events", "max_notification_id"):
        monkeypatch.setattr(recorder, method, away)


# ---- RPC: commands ---------------------------------------------------------------------------


def test_an_operator_opens_a_report_and_the_citizen_reads_it_with_the_folio(host):
    report = opened(host)
    assert report["folio"].startswith("QRO-") and report["version"] == 1
    public = rpc_reply(host, "get_report", report["folio"])
    private = rpc_reply(host, "get_report", report["folio"], report["access_token"])
    assert public["folio"] == report["folio"] and public["status"] == "open"
    assert private["folio"] == report["folio"]


@pytest.mark.parametrize(("payload", "role", "code", "status"), [
    ({**POTHOLE, "description": ""}, "operator", "invalid_input", 400),
    ({**POTHOLE, "channel": "paloma mensajera"}, "operator", "invalid_input", 400),
    (POTHOLE, "crew", "forbidden", 403),
    (POTHOLE, None, "unauthenticated", 401),
])
def test_an_open_the_service_refuses_says_why_by_code(host, payload, role, code, status):
    refused = refusal(host, "open_report", payload, token=role and token(host, role))
    assert (refused.code, refused.status) == (code, status)


def test_a_supervisor_runs_commands_within_their_department_only(host):
    folio = opened(host)["folio"]
    obras, agua = (token(host, "supervisor", department=d) for d in ("obras", "agua"))
    state = rpc_reply(host, "run_command", "triage", folio, TRIAGE, token=obras)
    assert state["folio"] == folio and state["version"] == 2
    refused = refusal(host, "run_command", "assign", folio, {"crew_id": "C-07"}, token=agua)
    assert (refused.code, refused.status) == ("forbidden", 403)


@pytest.mark.parametrize(("name", "folio", "payload", "code", "status"), [
    ("teleport", "QRO-2026-000001", {}, "not_found", 404),
    ("triage", "QRO-2026-999999", TRIAGE, "not_found", 404),
    ("triage", "QRO-2026-\x00", TRIAGE, "not_found", 404),
    ("assign", None, {"crew_id": ""}, "invalid_input", 400),
    ("arrive", None, {}, "invalid_transition", 409),
])
def test_a_command_the_service_refuses_answers_its_code(host, name, folio, payload, code,
                                                        status):
    refused = refusal(host, "run_command", name, folio or opened(host)["folio"], payload,
                      token=token(host, "supervisor", department="obras"))
    assert (refused.code, refused.status) == (code, status)


def test_a_crew_acts_only_on_its_own_jobs(host):
    folio = assigned(host, crew="C-07")["folio"]
    ours, theirs = (token(host, "crew", crew_id=c) for c in ("C-07", "C-09"))
    assert rpc_reply(host, "run_command", "dispatch_crew", folio, {}, token=ours)["version"] == 4
    refused = refusal(host, "run_command", "set_en_route", folio, {}, token=theirs)
    assert (refused.code, refused.status) == ("not_assigned_crew", 403)


def test_the_citizen_disputes_with_the_access_token_and_not_without(host):
    report = opened(host)
    folio, access_token = report["folio"], report["access_token"]
    refused = refusal(host, "citizen_feedback", folio, "dispute",
                      {"access_token": "not-the-citizens-token", "comment": "Sigue igual"})
    assert (refused.code, refused.status) == ("forbidden", 403)
    refused = refusal(host, "citizen_feedback", folio, "dispute", {"comment": "Sigue igual"})
    assert (refused.code, refused.status) == ("invalid_input", 400)
    refused = refusal(host, "citizen_feedback", folio, "dispute",
                      {"access_token": access_token, "comment": "Sigue igual"})
    # Nothing was done yet that the citizen could dispute.
    assert (refused.code, refused.status) == ("invalid_transition", 409)


def test_the_citizen_confirms_the_crews_work_by_rpc_or_over_http(host):
    crew = token(host, "crew", crew_id="C-07")
    for confirm_over_http in (False, True):
        report = assigned(host, crew="C-07")
        for step in ("dispatch_crew", "set_en_route", "arrive", "complete_work"):
            rpc_reply(host, "run_command", step, report["folio"], {}, token=crew)
        feedback = {"access_token": report["access_token"], "comment": "Quedó bien"}
        if confirm_over_http:
            answer = http_answer(host, "POST", f"/reports/{report['folio']}/confirm",
                                 json=feedback)
            assert answer.status_code == 200
            state = answer.get_json()
        else:
            state = rpc_reply(host, "citizen_feedback", report["folio"], "confirm", feedback)
        assert state["folio"] == report["folio"] and state["version"] == 8


# ---- RPC: queries ----------------------------------------------------------------------------


def test_staff_read_everything_about_a_report_within_their_scope(host):
    folio = assigned(host, crew="C-07")["folio"]
    rpc_reply(host, "run_command", "add_comment", folio,
              {"text": "Vecino molesto", "visibility": "internal"},
              token=token(host, "supervisor", department="obras"))
    staff = rpc_reply(host, "get_report_staff", folio, token=token(host, "operator"))
    assert staff["folio"] == folio and "Vecino molesto" in str(staff)
    crew = token(host, "crew", crew_id="C-07")
    crew_view = rpc_reply(host, "get_report_staff", folio, token=crew)
    assert "Vecino molesto" not in str(crew_view)
    refused = refusal(host, "get_report_staff", folio, token=token(host, "crew", crew_id="C-09"))
    assert (refused.code, refused.status) == ("not_assigned_crew", 403)
    assert rpc_reply(host, "get_report_staff", "QRO-2026-999999",
                     token=token(host, "operator")) is None
    refused = refusal(host, "get_report_staff", folio)
    assert (refused.code, refused.status) == ("unauthenticated", 401)


def test_a_wrong_access_token_opens_nothing(host):
    folio = opened(host)["folio"]
    refused = refusal(host, "get_report", folio, "not-the-citizens-token")
    assert (refused.code, refused.status) == ("forbidden", 403)


def test_staff_search_their_department_and_bad_filters_are_refused(host):
    folio = opened(host)["folio"]
    rows = rpc_reply(host, "search_reports", {"status": "open", "limit": 1000},
                     token=token(host, "supervisor", department="obras"))
    assert folio in [row["folio"] for row in rows]
    assert rpc_reply(host, "search_reports", {"status": "open"},
                     token=token(host, "supervisor", department="agua")) == []
    refused = refusal(host, "search_reports", {"bbox": "1,2,3"}, token=token(host, "operator"))
    assert (refused.code, refused.status) == ("invalid_input", 400)
    refused = refusal(host, "search_reports", {}, token=token(host, "crew", crew_id="C-07")[:-3])
    assert (refused.code, refused.status) == ("unauthenticated", 401)


def test_open311_reads_public_rows_and_updates_without_a_token(host):
    folio = opened(host)["folio"]
    rows = rpc_reply(host, "open311_requests", {"service_code": "bache", "limit": 1000})
    row = next(row for row in rows if row["folio"] == folio)
    assert row["status"] == "open" and "actor" not in str(row)
    updates = rpc_reply(host, "open311_updates", {"since": "2020-01-01T00:00:00Z", "limit": 1000})
    assert folio in [update["service_request_id"] for update in updates]
    for method, filters in (("open311_requests", {"status": "maybe"}),
                            ("open311_updates", {"limit": 5})):
        refused = refusal(host, method, filters)
        assert (refused.code, refused.status) == ("invalid_input", 400)


def test_a_consumer_that_missed_events_fetches_them_after_a_version(host):
    folio = assigned(host, crew="C-07")["folio"]
    events = rpc_reply(host, "report_events", folio, 1, token=token(host, "system"))
    assert [e["streamversion"] for e in events] == [2, 3]
    assert events[0]["type"] == "mx.expediente.report.triaged" and events[0]["subject"] == folio
    refused = refusal(host, "report_events", folio, 0, token=token(host, "crew", crew_id="C-09"))
    assert (refused.code, refused.status) == ("not_assigned_crew", 403)
    refused = refusal(host, "report_events", folio, -1, token=token(host, "system"))
    assert (refused.code, refused.status) == ("invalid_input", 400)
    refused = refusal(host, "report_events", "QRO-2026-999999", 0, token=token(host, "system"))
    assert (refused.code, refused.status) == ("not_found", 404)


def test_the_store_away_is_unavailable_to_the_caller(host, store_away):
    refused = refusal(host, "open_report", POTHOLE, token=token(host, "operator"))
    assert (refused.code, refused.status) == ("unavailable", 503)


# ---- HTTP ------------------------------------------------------------------------------------


def test_staff_open_a_report_over_http_and_the_citizen_reads_the_timeline(host):
    answer = http_answer(host, "POST", "/reports", json=POTHOLE, token=token(host, "operator"))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    report = answer.get_json()
    public = http_answer(host, "GET", f"/reports/{report['folio']}")
    private = http_answer(host, "GET", f"/reports/{report['folio']}",
                          headers={"X-Access-Token": report["access_token"]})
    staff = http_answer(host, "GET", f"/reports/{report['folio']}",
                        token=token(host, "supervisor", department="obras"))
    assert [a.status_code for a in (public, private, staff)] == [200, 200, 200]
    assert public.get_json()["folio"] == report["folio"]
    assert staff.get_json() != public.get_json()


@pytest.mark.parametrize(("body", "role", "code", "status"), [
    (b"{not json", "operator", "invalid_input", 400),
    ({**POTHOLE, "location": {"lat": 20.59}}, "operator", "invalid_input", 400),
    (POTHOLE, "auditor", "forbidden", 403),
    (POTHOLE, None, "unauthenticated", 401),
])
def test_an_open_refused_over_http_has_its_status_and_code(host, body, role, code, status):
    sent = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {
        "json": body}
    answer = http_answer(host, "POST", "/reports", token=role and token(host, role), **sent)
    assert answer.status_code == status
    assert answer.get_json()["error"]["code"] == code


def test_a_command_over_http_is_keyed_by_its_idempotency_key(host):
    folio = opened(host)["folio"]
    supervisor = token(host, "supervisor", department="obras")
    answers = [http_answer(host, "POST", f"/reports/{folio}/triage", json=TRIAGE,
                           token=supervisor, headers={"Idempotency-Key": "triage-once"})
               for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].get_json()["version"] == answers[1].get_json()["version"] == 2


@pytest.mark.parametrize(("path", "role", "code", "status"), [
    ("/reports/{folio}/teleport", "supervisor", "not_found", 404),
    ("/reports/QRO-2026-999999/triage", "supervisor", "not_found", 404),
    ("/reports/{folio}/triage", "crew", "forbidden", 403),
    ("/reports/{folio}/confirm", None, "invalid_input", 400),
])
def test_a_command_refused_over_http_has_its_status_and_code(host, path, role, code, status):
    path = path.format(folio=opened(host)["folio"])
    answer = http_answer(host, "POST", path, json=TRIAGE,
                         token=role and token(host, role, department="obras"))
    assert answer.status_code == status
    assert answer.get_json()["error"]["code"] == code


def test_unknown_folios_and_wrong_tokens_over_http(host):
    folio = opened(host)["folio"]
    missing = http_answer(host, "GET", "/reports/QRO-2026-999999")
    wrong = http_answer(host, "GET", f"/reports/{folio}", query_string={"token": "nope"})
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.get_json()["error"]["code"]) == (403, "forbidden")


def test_the_status_page_is_the_one_page_every_channel_links_to(host):
    report = opened(host)
    folio = report["folio"]
    rpc_reply(host, "run_command", "add_comment", folio,
              {"text": "Solo para quien reportó", "visibility": "private"},
              token=token(host, "operator"))
    public = http_answer(host, "GET", f"/seguimiento/{folio}")
    assert public.status_code == 200 and "Reporte recibido" in public.get_data(as_text=True)
    assert "Solo para quien reportó" not in public.get_data(as_text=True)
    follow = f'href="{host.config["PORTAL_URL"]}/seguir/{folio}"'
    assert follow in public.get_data(as_text=True)  # asking to be told goes to the portal
    private = http_answer(host, "GET", f"/seguimiento/{folio}",
                          query_string={"token": report["access_token"]})
    assert "Vista privada" in private.get_data(as_text=True)
    assert "Solo para quien reportó" in private.get_data(as_text=True)
    wrong = http_answer(host, "GET", f"/seguimiento/{folio}", query_string={"token": "nope"})
    assert wrong.status_code == 403 and "Solo para" not in wrong.get_data(as_text=True)
    missing = http_answer(host, "GET", "/seguimiento/QRO-2026-999999",
                          query_string={"token": "nope"})
    assert missing.status_code == 404


def test_staff_search_and_fetch_events_over_http(host):
    folio = assigned(host)["folio"]
    supervisor = token(host, "supervisor", department="obras")
    found = http_answer(host, "GET", "/reports", query_string={"folio": folio}, token=supervisor)
    assert [row["folio"] for row in found.get_json()["reports"]] == [folio]
    events = http_answer(host, "GET", f"/reports/{folio}/events",
                         query_string={"after_version": "2"}, token=supervisor)
    assert [e["streamversion"] for e in events.get_json()["events"]] == [3]
    bad = http_answer(host, "GET", "/reports", query_string={"limit": "0"}, token=supervisor)
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "invalid_input")
    anonymous = http_answer(host, "GET", f"/reports/{folio}/events")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"


def test_the_store_away_is_a_503_that_says_when_to_retry(host, store_away):
    for answer in (http_answer(host, "POST", "/reports", json=POTHOLE,
                               token=token(host, "operator")),
                   http_answer(host, "GET", "/reports/QRO-2026-000001")):
        assert answer.status_code == 503
        assert answer.get_json()["error"]["code"] == "unavailable"
        assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_readiness_shows_the_views_and_the_store(host):
    answer = http_answer(host, "GET", "/readyz")
    assert answer.status_code == 200
    assert answer.get_json()["ready"] is True and answer.get_json()["store"] is True


def test_a_client_cannot_price_materials_at_the_public_door_only_crews_over_the_bus(host):
    """Unit costs come from crews' catalog over RPC; the HTTP door refuses them and writes
    nothing (a crew's phone must not set what billing charges)."""
    report = assigned(host)
    crew = token(host, "crew", crew_id="C-07")
    for step in ("dispatch_crew", "arrive"):
        rpc_reply(host, "run_command", step, report["folio"], {}, token=crew)
    priced = {"items": [{"code": "MEZ-ASF", "quantity": 0.5, "unit_cost": "0.01",
                         "cost": "0.01"}]}
    answer = http_answer(host, "POST", f"/reports/{report['folio']}/log_materials",
                         token=crew, json=priced)
    assert answer.status_code == 400 and "crews" in answer.get_data(as_text=True)
    state = rpc_reply(host, "run_command", "log_materials", report["folio"],
                      {"items": [{"code": "MEZ-ASF", "quantity": 0.5, "unit_cost": "1850.00",
                                  "cost": "925.00"}]}, token=crew)
    assert state["version"] == 6  # opened … arrived (5), these materials: the refusal wrote none
    staff = rpc_reply(host, "get_report_staff", report["folio"], token=token(host, "supervisor"))
    assert [m["unit_cost"] for m in staff["materials"]] == ["1850.00"]
