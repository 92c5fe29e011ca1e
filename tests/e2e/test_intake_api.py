"""The mobile app's API and the 070/window staff entry, against running tracking and intake."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.test_portal import tiny_png
from tests.support import bearer, wait_for

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


def test_a_phone_retrying_before_the_first_answer_came_still_gets_one_report(stack):
    """Six sends of one report, all in flight at once (a phone on a bad network): every answer
    is the same folio and tracking holds one report."""
    key = str(uuid.uuid4())
    spot = {"lat": 20.6 + random.random() / 10, "long": -100.4 + random.random() / 10}
    body = {**POTHOLE, "location": spot}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post_app(stack, body, key), range(6)))

    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.json()["folio"] for a in answers}) == 1
    assert len({a.json()["access_token"] for a in answers}) == 1
    # A later report on the same spot: once the views show it, they show everything before it.
    later = post_app(stack, {**body, "description": "otro"}).json()["folio"]
    bbox = f"{spot['lat'] - 1e-5},{spot['long'] - 1e-5},{spot['lat'] + 1e-5},{spot['long'] + 1e-5}"

    def on_the_spot():
        found = requests.get(f"{stack.tracking.url}/reports", params={"bbox": bbox},
                             headers=bearer("supervisor"), timeout=10).json()["reports"]
        folios = {r["folio"] for r in found}
        return found if later in folios else None

    assert sorted(r["folio"] for r in wait_for(on_the_spot)) == sorted(
        [answers[0].json()["folio"], later])


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


def test_contact_details_reach_notifications_queue_and_never_the_published_events(stack):
    import json

    import kombu

    from shared.contracts import contacts
    from tests.conftest import unique
    from tests.support import EventListener, wait_for

    listener = EventListener(stack.amqp_uri, "expediente.events", unique("test.privacy"))
    try:
        contact = {"email": "luz.perez@example.com", "phone": "+52 442 555 0101",
                   "first_name": "Luz", "last_name": "Pérez Quintana"}
        response = post_app(stack, {**POTHOLE, "contact": contact})
        assert response.status_code == 201, response.text
        folio = response.json()["folio"]
        wait_for(lambda: any(e.subject == folio for e in listener.received), timeout=20)
        published = json.dumps([e.to_dict() if hasattr(e, "to_dict") else vars(e)
                                for e in listener.received], default=str)
        for secret in ("luz.perez@example.com", "555 0101", "Pérez Quintana"):
            assert secret not in published
        for url in (f"/api/v1/reports/{folio}",):
            assert "luz.perez" not in requests.get(stack.intake.url + url, timeout=10).text
    finally:
        listener.close()
    with kombu.Connection(stack.amqp_uri) as conn:
        queue = kombu.Queue(contacts.QUEUE, durable=True)(conn.default_channel)
        handed = []
        while (message := queue.get(no_ack=True)) is not None:
            handed.append(json.loads(message.body))
    mine = [m for m in handed if m["folio"] == folio]
    assert mine and mine[0]["contact"]["email"] == "luz.perez@example.com"
    assert mine[0]["channel"] == "app" and mine[0]["access_token"]


def test_a_citizen_may_follow_an_existing_nearby_report_instead(stack):
    first = post_app(stack, {**POTHOLE, "location": {"lat": 20.61, "long": -100.41}}).json()
    nearby = requests.get(f"{stack.intake.url}/api/v1/duplicates",
                          params={"service_code": "bache", "lat": 20.6101, "long": -100.41},
                          timeout=10)
    assert nearby.status_code == 200, nearby.text
    assert first["folio"] in [r["folio"] for r in nearby.json()["reports"]]
    far = requests.get(f"{stack.intake.url}/api/v1/duplicates",
                       params={"service_code": "bache", "lat": 20.62, "long": -100.41}, timeout=10)
    assert first["folio"] not in [r["folio"] for r in far.json()["reports"]]
    follow = requests.post(f"{stack.intake.url}/api/v1/reports/{first['folio']}/follow",
                           json={"contact": {"email": "vecino@example.com"}}, timeout=10)
    assert follow.status_code == 202, follow.text
    missing = requests.post(f"{stack.intake.url}/api/v1/reports/QRO-2026-999999/follow",
                            json={"contact": {"email": "vecino@example.com"}}, timeout=10)
    assert missing.status_code == 404
    bad = requests.get(f"{stack.intake.url}/api/v1/duplicates", params={"lat": "x"}, timeout=10)
    assert bad.status_code == 400


def test_an_operator_marks_a_duplicate(stack):
    first = post_app(stack, POTHOLE).json()["folio"]
    second = post_app(stack, POTHOLE).json()["folio"]
    response = requests.post(f"{stack.intake.url}/staff/reports/{second}/mark_duplicate",
                             json={"duplicate_of": first}, headers=bearer("operator"), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["duplicate_of"] == first


def test_an_admin_edits_the_catalog_through_the_api(stack):
    definition = {"name": "Olor a gas", "group": "Emergencias", "department": "proteccion_civil",
                  "sla_hours": 2, "keywords": ["gas"], "questions": []}
    url = f"{stack.intake.url}/staff/services/fuga_gas"
    assert requests.put(url, json=definition, headers=bearer("operator"),
                        timeout=10).status_code == 403
    assert requests.put(url, json={**definition, "sla_hours": "x"}, headers=bearer("admin"),
                        timeout=10).status_code == 400
    saved = requests.put(url, json=definition, headers=bearer("admin"), timeout=10)
    assert saved.status_code == 200, saved.text
    codes = [s["code"] for s in requests.get(f"{stack.intake.url}/api/v1/services",
                                             timeout=10).json()["services"]]
    assert "fuga_gas" in codes


def test_an_uploaded_photo_is_known_and_belongs_to_the_report_that_uses_it(stack):
    ticket = requests.post(f"{stack.intake.url}/api/v1/upload-tickets",
                           timeout=10).json()["ticket"]
    used, unused = (requests.post(f"{stack.intake.url}/api/v1/photos",
                                  data=tiny_png(rgb=(n, 0, 0)), timeout=10,
                                  headers={"Content-Type": "image/png", "X-Upload-Ticket": ticket}
                                  ).json()["url"] for n in (1, 2))
    folio = post_app(stack, {**POTHOLE, "media_urls": [used]}).json()["folio"]

    owners = dict(stack.query("intake", "SELECT name, folio FROM intake_photos"))
    assert owners[used.rsplit("/", 1)[1]] == folio
    assert owners[unused.rsplit("/", 1)[1]] is None  # swept after PHOTO_ORPHAN_HOURS
