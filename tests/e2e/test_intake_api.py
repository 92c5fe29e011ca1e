"""The mobile app's API and the 070/window staff entry, against running tracking and intake."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support import bearer

pytestmark = pytest.mark.e2e

POTHOLE = {"service_code": "bache", "description": "Bache frente a la escuela",
           "location": {"lat": 20.5931, "long": -100.392}, "answers": {"tamano": "grande"}}


def post_app(stack, body, key=None):
    return requests.post(f"{stack.intake.url}/api/v1/reports", json=body,
                         headers={"Idempotency-Key": key or str(uuid.uuid4())}, timeout=30)


def test_a_citizen_reports_a_pothole_from_the_app_and_follows_the_folio(stack):
    response = post_app(stack, {**POTHOLE, "contact": {"email": "ana@example.com"}})
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["folio"].startswith("QRO-")
    assert receipt["channel"] == "app" and receipt["subscribed"] is True
    view = requests.get(f"{stack.intake.url}/api/v1/reports/{receipt['folio']}", timeout=10)
    assert view.status_code == 200
    assert view.json()["service"]["code"] == "bache"
    assert "ana@example.com" not in view.text
    staff = requests.get(f"{stack.tracking.url}/reports/{receipt['folio']}",
                         headers=bearer("supervisor"), timeout=10).json()
    assert staff["channel"] == "app"


def test_a_phone_that_retries_with_the_same_key_gets_one_report(stack):
    key = str(uuid.uuid4())
    first = post_app(stack, POTHOLE, key)
    again = post_app(stack, POTHOLE, key)
    assert first.status_code == again.status_code == 201
    assert first.json()["folio"] == again.json()["folio"]
    other = post_app(stack, {**POTHOLE, "description": "otro"}, key)
    assert other.status_code == 422


@pytest.mark.parametrize("body, field", [
    ({**POTHOLE, "service_code": "nope"}, "service_code"),
    ({**POTHOLE, "answers": {"tamano": "enorme"}}, "attribute[tamano]"),
    ({**POTHOLE, "answers": {}}, "attribute[tamano]"),
    ({**POTHOLE, "location": {"lat": 20.5}}, "location"),
    ({**POTHOLE, "description": ""}, "description"),
    ({**POTHOLE, "extra": 1}, "extra"),
    ({**POTHOLE, "contact": {"email": "not-an-email"}}, "contact"),
])
def test_bad_reports_get_a_clear_400(stack, body, field):
    response = post_app(stack, body)
    assert response.status_code == 400, response.text
    assert field in response.json()["errors"]


def test_the_app_must_send_an_idempotency_key(stack):
    response = requests.post(f"{stack.intake.url}/api/v1/reports", json=POTHOLE, timeout=10)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]


def test_a_070_operator_enters_a_report_for_a_caller_and_is_recorded_as_the_actor(stack):
    response = requests.post(f"{stack.intake.url}/staff/reports",
                             json={**POTHOLE, "channel": "phone_070",
                                   "contact": {"phone": "+52 442 123 4567"}},
                             headers=bearer("operator"), timeout=30)
    assert response.status_code == 201, response.text
    folio = response.json()["folio"]
    staff = requests.get(f"{stack.intake.url}/staff/reports/{folio}", headers=bearer("operator"),
                         timeout=10).json()
    assert staff["channel"] == "phone_070"
    opened = staff["timeline"][0]
    assert opened["actor_role"] == "operator"
    assert "+52 442" not in str(staff)


def test_staff_entry_needs_an_operator(stack):
    body = {**POTHOLE, "channel": "window"}
    assert requests.post(f"{stack.intake.url}/staff/reports", json=body,
                         timeout=10).status_code == 401
    assert requests.post(f"{stack.intake.url}/staff/reports", json=body,
                         headers=bearer("crew"), timeout=10).status_code == 403
