"""A supervisor's app that lost the answer sends the command again: over HTTP, the same
Idempotency-Key records it once (a real tracking process on PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
import requests

from shared.chassis.auth import mint_token
from tests.support import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

POTHOLE = {
    "service_code": "bache", "service_name": "Bache", "department": "obras_publicas",
    "description": "Bache frente a la escuela", "location": {"lat": 20.5931, "long": -100.392},
    "channel": "window",
}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(f'ana-{role}', (role,))}"}


@pytest.fixture
def tracking(pg_env):
    service = ServiceProcess("tracking", {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "TRACKING_POSTGRES_DBNAME": pg_env["POSTGRES_DBNAME"],
        "TRACKING_POSTGRES_SCHEMA": pg_env["POSTGRES_SCHEMA"],
        "POSTGRES_USER": pg_env["POSTGRES_USER"],
    }).start()
    yield service
    service.stop()


def post(tracking, path: str, body: dict, headers: dict) -> requests.Response:
    return requests.post(f"{tracking.url}{path}", json=body, headers=headers, timeout=20)


def test_the_same_idempotency_key_assigns_once_and_answers_the_report_as_it_stands(tracking):
    opened = post(tracking, "/reports", POTHOLE, auth("operator")).json()
    folio = opened["folio"]
    key = {"Idempotency-Key": str(uuid.uuid4()), **auth("supervisor")}

    first = post(tracking, f"/reports/{folio}/assign", {"crew_id": "C-07"}, key)
    again = post(tracking, f"/reports/{folio}/assign", {"crew_id": "C-07"}, key)
    other = post(tracking, f"/reports/{folio}/add_comment", {"text": "Va la C-07"},
                 {**auth("supervisor"), "Idempotency-Key": str(uuid.uuid4())})
    retried_comment = post(tracking, f"/reports/{folio}/add_comment", {"text": "Va la C-07"},
                           {**auth("supervisor"), "Idempotency-Key": key["Idempotency-Key"]})

    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json()
    assert (first.json()["version"], first.json()["crew_id"]) == (2, "C-07")
    assert other.json()["version"] == 3
    assert retried_comment.json()["version"] == 3  # that key was used: nothing new recorded
    too_long = post(tracking, f"/reports/{folio}/reopen", {"reason": "x"},
                    {**auth("supervisor"), "Idempotency-Key": "k" * 101})
    assert too_long.status_code == 400 and "step_id" in too_long.text


def test_the_citizens_word_sent_twice_with_its_key_counts_once(tracking):
    opened = post(tracking, "/reports", POTHOLE, auth("operator")).json()
    folio = opened["folio"]
    closed = post(tracking, f"/reports/{folio}/close_report", {"resolution": "fixed"},
                  auth("supervisor"))
    assert closed.status_code == 200, closed.text
    body = {"access_token": opened["access_token"], "comment": "Quedó bien"}
    key = {"Idempotency-Key": str(uuid.uuid4())}

    answers = [post(tracking, f"/reports/{folio}/confirm", body, key) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert answers[0].json()["version"] == answers[1].json()["version"] == 3
