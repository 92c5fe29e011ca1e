"""Tracking as people use it: a real service process, over HTTP and RPC, with real RabbitMQ."""

from __future__ import annotations

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from shared.chassis.auth import mint_token
from tests.conftest import unique
from tests.support import EventListener, ServiceProcess, bearer, wait_for

pytestmark = pytest.mark.e2e

POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
    "description": "Bache frente a la escuela", "location": {"lat": 20.5931, "long": -100.392},
    "channel": "window", "sla_hours": 72,
}


def auth(role: str, **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'ana-{role}', (role,), **claims)}"}


@pytest.fixture(scope="module")
def exchange() -> str:
    return unique("test.events")


@pytest.fixture(scope="module")
def tracking(tmp_path_factory, exchange, private_amqp_uri):
    db = tmp_path_factory.mktemp("tracking") / "tracking.sqlite"
    service = ServiceProcess("tracking", {
        "AMQP_URI": private_amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "TRACKING_SQLITE_DBNAME": str(db),
        "EVENTS_EXCHANGE": exchange, "RELAY_POLL_INTERVAL": "0.2",
    }).start()
    yield service
    service.stop()


@pytest.fixture
def listener(private_amqp_uri, exchange):
    listening = EventListener(private_amqp_uri, exchange, unique("test.listener"))
    yield listening
    listening.close()


def open_report(tracking, payload=POTHOLE) -> dict:
    response = requests.post(f"{tracking.url}/reports", json=payload, headers=auth("operator"))
    assert response.status_code == 201, response.text
    return response.json()


def command(tracking, folio, name, body, role, **claims) -> requests.Response:
    return requests.post(f"{tracking.url}/reports/{folio}/{name}", json=body,
                         headers=auth(role, **claims))


def test_a_pothole_is_walked_through_every_step_and_the_citizen_sees_the_timeline(
        tracking, listener):
    opened = open_report(tracking)
    folio = opened["folio"]
    crew = {"crew_id": "C-07"}
    steps = [
        ("triage", {"department": "obras_publicas", "priority": "high",
                    "service_code": "bache"}, "supervisor", {}),
        ("assign", crew, "supervisor", {}),
        ("dispatch_crew", {"step_id": "s-1"}, "crew", crew),
        ("set_en_route", {}, "crew", crew),
        ("arrive", {}, "crew", crew),
        ("add_photo", {"url": "https://fotos.example/antes.jpg", "stage": "before",
                       "caption": "Antes"}, "crew", crew),
        ("log_materials", {"items": [{"code": "MEZ-ASF", "quantity": 0.5, "unit": "m3"}]},
         "crew", crew),
        ("complete_work", {"notes": "Bache rellenado"}, "crew", crew),
        ("add_comment", {"text": "Revisado por supervisión", "visibility": "internal"},
         "supervisor", {}),
        ("close_report", {"resolution": "fixed"}, "supervisor", {}),
    ]
    for name, body, role, claims in steps:
        response = command(tracking, folio, name, body, role, **claims)
        assert response.status_code == 200, (name, response.text)
    feedback = requests.post(f"{tracking.url}/reports/{folio}/confirm",
                             json={"access_token": opened["access_token"], "comment": "Gracias"})
    assert feedback.status_code == 200, feedback.text

    view = requests.get(f"{tracking.url}/reports/{folio}").json()
    types = [entry["type"] for entry in view["timeline"]]
    assert types == ["opened", "triaged", "assigned", "crew_dispatched", "crew_en_route",
                     "crew_arrived", "photo_added", "materials_logged", "work_completed",
                     "closed", "citizen_confirmed"]
    assert view["status"] == "closed" and view["resolution"] == "fixed"
    assert "Revisado por supervisión" not in str(view)  # internal notes stay inside

    page = requests.get(f"{tracking.url}/seguimiento/{folio}")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert folio in page.text and "La cuadrilla llegó" in page.text

    wait_for(lambda: sum(e.subject == folio for e in listener.received) >= 12,
             message="all twelve events on RabbitMQ")
    names = [e.type.rsplit(".", 1)[1] for e in listener.received if e.subject == folio]
    assert names[0] == "opened" and names[-1] == "citizen_confirmed"


def test_malformed_input_gets_400_with_field_messages_and_writes_nothing(tracking):
    before = requests.get(f"{tracking.url}/reports?limit=1000", headers=auth("supervisor"))
    bad = dict(POTHOLE, location={"lat": 95}, channel="pigeon")
    del bad["description"]
    response = requests.post(f"{tracking.url}/reports", json=bad, headers=auth("operator"))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"description", "channel", "location"} <= set(errors)

    not_json = requests.post(f"{tracking.url}/reports", data="{oops",
                             headers={**auth("operator"), "Content-Type": "application/json"})
    assert not_json.status_code == 400
    after = requests.get(f"{tracking.url}/reports?limit=1000", headers=auth("supervisor"))
    assert len(after.json()["reports"]) == len(before.json()["reports"])

    folio = open_report(tracking)["folio"]
    response = command(tracking, folio, "log_materials", {"items": [{"code": "X",
                                                                    "quantity": -1}]},
                       "supervisor")
    assert response.status_code == 400 and "items" in response.json()["errors"]
    assert requests.get(f"{tracking.url}/reports/{folio}").json()["timeline"][-1]["type"] == \
        "opened"


def test_a_step_out_of_order_is_refused_with_409(tracking):
    folio = open_report(tracking)["folio"]
    response = command(tracking, folio, "arrive", {}, "supervisor")
    assert response.status_code == 409
    assert "dispatch" in str(response.json()["errors"]) or "arrival" in str(response.json())


def test_an_unknown_folio_is_404(tracking):
    assert requests.get(f"{tracking.url}/reports/QRO-2026-999999").status_code == 404
    assert requests.get(f"{tracking.url}/seguimiento/QRO-2026-999999").status_code == 404
    response = command(tracking, "QRO-2026-999999", "assign", {"crew_id": "C-1"}, "supervisor")
    assert response.status_code == 404


def test_staff_commands_need_a_token_and_the_right_role(tracking):
    folio = open_report(tracking)["folio"]
    url = f"{tracking.url}/reports/{folio}/assign"
    assert requests.post(url, json={"crew_id": "C-1"}).status_code == 401
    assert requests.post(url, json={"crew_id": "C-1"},
                         headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert command(tracking, folio, "assign", {"crew_id": "C-1"}, "crew",
                   crew_id="C-1").status_code == 403
    assert command(tracking, folio, "assign", {"crew_id": "C-1"}, "supervisor").status_code == 200
    other_crew = command(tracking, folio, "dispatch_crew", {}, "crew", crew_id="C-2")
    assert other_crew.status_code == 403  # the domain refuses a crew that was not assigned
    assert other_crew.json()["error"]["code"] == "not_assigned_crew"
    assert requests.get(f"{tracking.url}/reports").status_code == 401


def test_a_department_supervisor_runs_only_their_departments_reports(tracking):
    folio = open_report(tracking)["folio"]  # obras_publicas
    before = requests.get(f"{tracking.url}/reports/{folio}", headers=auth("auditor")).json()

    water = command(tracking, folio, "assign", {"crew_id": "C-1"}, "supervisor",
                    department="agua_potable")
    assert water.status_code == 403, water.text
    assert "obras_publicas" in water.json()["errors"]["authorization"][0]
    after = requests.get(f"{tracking.url}/reports/{folio}", headers=auth("auditor")).json()
    assert after["version"] == before["version"]  # nothing written

    works = command(tracking, folio, "triage", {"department": "alumbrado", "priority": "high",
                                                "service_code": "luminaria"}, "supervisor",
                    department="obras_publicas")
    assert works.status_code == 200, works.text  # hands it over to street lighting
    assert command(tracking, folio, "assign", {"crew_id": "C-1"}, "supervisor",
                   department="obras_publicas").status_code == 403
    assert command(tracking, folio, "assign", {"crew_id": "C-1"}, "supervisor",
                   department="alumbrado").status_code == 200
    assert command(tracking, folio, "close_report", {"resolution": "cancelled"},
                   "supervisor").status_code == 200  # a city-wide supervisor


def test_the_private_view_needs_the_citizens_access_token(tracking):
    opened = open_report(tracking)
    folio = opened["folio"]
    url = f"{tracking.url}/reports/{folio}"
    assert requests.get(url, headers={"X-Access-Token": "wrong"}).status_code == 403
    private = requests.get(url, headers={"X-Access-Token": opened["access_token"]})
    assert private.status_code == 200 and private.json()["folio"] == folio


def test_rpc_commands_carry_the_callers_identity(tracking, private_amqp_uri):
    config = {"AMQP_URI": private_amqp_uri}
    with ClusterRpcProxy(config, context_data=bearer("operator"), timeout=20) as rpc:
        folio = rpc.tracking.open_report(dict(POTHOLE, channel="phone_070"))["folio"]
    with ClusterRpcProxy(config, context_data=bearer("supervisor"), timeout=20) as rpc:
        state = rpc.tracking.run_command("assign", folio, {"crew_id": "C-3"})
        staff = rpc.tracking.get_report_staff(folio)
    assert state["step"] == "assigned"
    assert staff["timeline"][0]["channel"] == "phone_070"


def test_health_readiness_and_metrics(tracking):
    assert requests.get(f"{tracking.url}/healthz").status_code == 200
    ready = requests.get(f"{tracking.url}/readyz")
    assert ready.status_code == 200 and ready.json()["store"] is True
    response = requests.get(f"{tracking.url}/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    metrics = response.text
    for name in ("expediente_events_stored", "expediente_relay_events_published_total",
                 "expediente_follower_lag_events", "expediente_follower_lag_seconds",
                 "expediente_request_duration_seconds_bucket"):
        assert name in metrics
