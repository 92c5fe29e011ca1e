"""Every error tracking answers reaches intake's caller with the same status and code, through
each of intake's doors that calls tracking; a failure without a code, or tracking not answering,
is a 503 with Retry-After that never carries tracking's text.

Tracking here is a stand-in on a RabbitMQ virtual host of its own that raises the error a test
names, through tracking's own error table and the chassis' RPC reply (what real tracking does);
intake is the real `nameko run` process."""

from __future__ import annotations

import uuid

import eventlet
import psycopg
import pytest
import requests
from eventsourcing.persistence import RecordConflictError
from marshmallow import ValidationError
from nameko.containers import ServiceContainer

from services.tracking import domainmodel
from services.tracking.errors import ERRORS
from services.tracking.write.application import ReportNotFound
from shared.chassis.auth import Forbidden, Unauthenticated
from shared.chassis.rpc import rpc
from tests.stack import create_vhost, delete_vhost
from tests.support import ServiceProcess, bearer

pytestmark = pytest.mark.e2e

SECRET_TEXT = "psql://tracking:hunter2@db"  # what an unexpected failure over there might say
FOLIO = "QRO-2026-000123"
POTHOLE = {"service_code": "bache", "description": "Bache frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"}}
FAILURE: list[BaseException] = []  # what the stand-in raises next
DELAY: list[float] = [0.0]


def answer() -> None:
    eventlet.sleep(DELAY[0])
    raise FAILURE[0]


class StandInTracking:
    """Answers every call intake makes with the failure the test set."""

    name = "tracking"

    @rpc(errors=ERRORS)
    def open_report(self, payload):
        answer()

    @rpc(errors=ERRORS)
    def run_command(self, name, folio, payload):
        answer()

    @rpc(errors=ERRORS)
    def get_report(self, folio, access_token=None):
        answer()

    @rpc(errors=ERRORS)
    def get_report_staff(self, folio):
        answer()

    @rpc(errors=ERRORS)
    def open311_requests(self, filters):
        answer()


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    vhost = create_vhost()
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    tracking = ServiceContainer(StandInTracking, {"AMQP_URI": amqp_uri})
    tracking.start()
    workdir = tmp_path_factory.mktemp("codes")
    process = ServiceProcess("intake", {
        "AMQP_URI": amqp_uri, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "INTAKE_SQLITE_DBNAME": str(workdir / "intake.sqlite"),
        "INTAKE_PHOTO_DIR": str(workdir / "photos"), "RPC_TIMEOUT": "2"}).start()
    yield process
    process.stop()
    tracking.stop()
    delete_vhost(vhost)


ERRORS_TRACKING_ANSWERS = [  # (what tracking raises, the status and code it answers)
    (ValidationError({"description": ["Missing data for required field."]}), 400,
     "invalid_input"),
    (domainmodel.InvalidCommand("a report cannot be a duplicate of itself"), 400,
     "invalid_command"),
    (Unauthenticated("the token has expired"), 401, "unauthenticated"),
    (Forbidden("supervisors of agua_potable act on their department only"), 403, "forbidden"),
    (PermissionError("the access token does not open this report"), 403, "forbidden"),
    (domainmodel.NotAssignedCrew("crew C-2 is not the one assigned"), 403, "not_assigned_crew"),
    (ReportNotFound(FOLIO), 404, "not_found"),
    (KeyError("unknown command 'fly'"), 404, "not_found"),
    (domainmodel.InvalidTransition("cannot arrive before being dispatched"), 409,
     "invalid_transition"),
    (domainmodel.ReportClosed("the report is closed"), 409, "report_closed"),
    (RecordConflictError("the report changed meanwhile"), 409, "version_conflict"),
    (psycopg.OperationalError("the database system is shutting down"), 503, "unavailable"),
    (RuntimeError(SECRET_TEXT), 503, "unavailable"),  # no code: never 502, never its text
]
DOORS = {  # intake's doors that call tracking: (method, path, body, with a staff token)
    "staff mark_duplicate": ("POST", f"/staff/reports/{FOLIO}/mark_duplicate",
                             {"duplicate_of": "QRO-2026-000001"}, True),
    "staff lookup": ("GET", f"/staff/reports/{FOLIO}", None, True),
    "staff report entry": ("POST", "/staff/reports", {**POTHOLE, "channel": "phone_070"}, True),
    "app report": ("POST", "/api/v1/reports", POTHOLE, False),
    "app report view": ("GET", f"/api/v1/reports/{FOLIO}", None, False),
    "app follow": ("POST", f"/api/v1/reports/{FOLIO}/follow",
                   {"contact": {"email": "ana@example.com"}}, False),
}


def call(intake, door: str) -> requests.Response:
    method, path, body, staff = DOORS[door]
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if staff:
        headers.update(bearer("operator"))
    return requests.request(method, f"{intake.url}{path}", json=body, headers=headers,
                            timeout=30)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(("failure", "status", "code"), ERRORS_TRACKING_ANSWERS,
                         ids=[f"{type(e).__name__}-{c}" for e, _, c in ERRORS_TRACKING_ANSWERS])
def test_intake_answers_the_status_and_code_tracking_gave(intake, door, failure, status, code):
    FAILURE[:] = [failure]
    if code == "unauthenticated" and not DOORS[door][3]:
        # Intake called as itself: its own token was refused, which is intake's misconfiguration,
        # not the citizen's doing. The citizen is told to come back; the log says why.
        status, code = 503, "unavailable"
    response = call(intake, door)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["X-Request-Id"]
    assert SECRET_TEXT not in response.text and "Traceback" not in response.text
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0
    if code == "invalid_input":
        assert response.json()["errors"] == {"description": ["Missing data for required field."]}


def test_tracking_that_does_not_answer_is_a_503_with_retry_after(intake):
    FAILURE[:] = [domainmodel.ReportClosed("too late anyway")]
    DELAY[0] = 3.0  # longer than intake's RPC_TIMEOUT
    try:
        response = call(intake, "staff lookup")
    finally:
        DELAY[0] = 0.0
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"]


@pytest.mark.parametrize(("failure", "status"), [
    (ValidationError({"limit": ["too big"]}), 400),
    (Forbidden("no"), 403),
    (psycopg.OperationalError("down"), 503),
    (RuntimeError(SECRET_TEXT), 503),
])
def test_open311_maps_tracking_codes_the_same_way_in_its_own_format(intake, failure, status):
    FAILURE[:] = [failure]
    response = requests.get(f"{intake.url}/open311/v2/requests.json", timeout=30)
    assert response.status_code == status, response.text
    assert [e["code"] for e in response.json()] == [status]
    assert SECRET_TEXT not in response.text
    if status == 503:
        assert response.headers["Retry-After"]
        assert response.headers["X-Request-Id"] in response.json()[0]["description"]


@pytest.mark.parametrize(("failure", "status"), [
    (PermissionError("the access token does not open this report"), 403),
    (psycopg.OperationalError("down"), 503),
    (RuntimeError(SECRET_TEXT), 503),
])
def test_the_portal_pages_map_them_the_same_way(intake, failure, status):
    FAILURE[:] = [failure]
    response = requests.get(f"{intake.url}/seguir/{FOLIO}", timeout=30)  # asks tracking first
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert SECRET_TEXT not in response.text
    if status == 503:  # a 5xx page names the request, for a citizen who calls about it
        assert response.headers["X-Request-Id"] in response.text
