"""The push channel against a real push service: the local endpoint of
deploy/local/push_endpoint.py, run as its own process, which mints subscriptions as a browser's
push service does and decrypts what it is sent with the subscription's own keys. What it decrypts
is what the citizen's browser would show; a service that answers 500 makes a "retry", then takes
the same push; a subscription it does not have is "rejected" as expired; a push signed with another
key than the browser subscribed with is refused ("retry": our setting); a stopped one is "retry"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from services.notifications.channels import Delivery
from services.notifications.messages import render
from services.notifications.webpush import (
    EXPIRED,
    PushChannel,
    generate_private_key,
    topic,
    vapid_public_key,
)
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import TYPE_PREFIX
from tests.support import LocalServer

pytestmark = pytest.mark.integration

ENDPOINT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "push_endpoint.py"
FOLIO = "QRO-2026-000123"
KEY = generate_private_key()
SUBJECT = "mailto:avisos@lerdo.gob.mx"


class Endpoint(LocalServer):
    """One push_endpoint.py process on a free port, logging in a folder of the test's own."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.pushes = folder / "pushes.jsonl"
        super().__init__(folder, "push_endpoint.py", "--log", str(self.pushes), *options)
        self.origin = self.url
        self.start()

    def subscribe(self, server_key: str | None = None) -> dict[str, Any]:
        """What Ana's browser gets from pushManager.subscribe({applicationServerKey})."""
        answer = requests.post(f"{self.origin}/_subscribe", timeout=5,
                               json={"applicationServerKey": server_key or vapid_public_key(KEY)})
        assert answer.status_code == 201
        return answer.json()

    def received(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.origin}/_received", timeout=5)
        assert answer.status_code == 200
        return answer.json()



@pytest.fixture
def start_endpoint(tmp_path):
    started: list[Endpoint] = []

    def start(*options: str) -> Endpoint:
        started.append(Endpoint(tmp_path / str(len(started)), *options))
        return started[-1]

    yield start
    for endpoint in started:
        endpoint.stop()


def channel(key: str = KEY) -> PushChannel:
    return PushChannel.from_config({"VAPID_PRIVATE_KEY": key, "VAPID_SUBJECT": SUBJECT,
                                    "PUSH_TTL": 7200, "PUSH_TIMEOUT": 5, "PUSH_ALLOW_HTTP": "1"})


def en_route(subscription: dict[str, Any], event_id: str = "ev-41") -> Delivery:
    """Ana's browser is told, in Spanish, that the crew is on its way to her pothole."""
    event = CloudEvent(id=event_id, source="/tracking", type=f"{TYPE_PREFIX}crew_en_route",
                       subject=FOLIO, time=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
                       data={"folio": FOLIO, "service_name": "Bache en la vía pública",
                             "eta": "2026-12-01T16:25:00+00:00"})
    message = render(event, status_url=f"https://seguimiento.example.gob.mx/{FOLIO}")
    assert message is not None
    return Delivery(key=f"{event_id}:sub-7:push", address=json.dumps(subscription),
                    message=message)


def test_the_citizen_browser_decrypts_the_step_it_was_sent_signed_by_us(start_endpoint):
    endpoint = start_endpoint()
    subscription = endpoint.subscribe()
    delivery = en_route(subscription)
    outcome = channel().send(delivery)
    assert outcome.status == "sent"
    [push] = endpoint.received()
    assert outcome.provider_id == f"{endpoint.origin}/message/{push['message']}"
    assert json.loads(push["payload"]) == {"title": delivery.message.subject,
                                           "body": delivery.message.sms}
    assert FOLIO in push["payload"] and "10:25" in push["payload"]  # the ETA, in city time
    assert (push["vapid_ok"], push["vapid_error"]) == (True, None)
    assert push["vapid_key"] == vapid_public_key(KEY)
    assert push["vapid_claims"]["aud"] == endpoint.origin
    assert push["vapid_claims"]["sub"] == SUBJECT
    assert (push["ttl"], push["urgency"], push["topic"]) == (7200, "normal",
                                                             topic(delivery.key))
    assert [json.loads(line) for line in endpoint.pushes.read_text().splitlines()] == [push]


def test_a_push_service_that_says_try_later_gets_the_same_push_again_and_takes_it(
        start_endpoint):
    endpoint = start_endpoint("--fail-first", "1")
    delivery = en_route(endpoint.subscribe())
    push = channel()
    refused = push.send(delivery)
    assert (refused.status, refused.detail[:3], endpoint.received()) == ("retry", "500", [])
    taken = push.send(delivery)
    assert taken.status == "sent"
    [received] = endpoint.received()
    assert received["topic"] == topic(delivery.key) and received["vapid_ok"]


def test_a_subscription_the_push_service_does_not_have_is_rejected_as_expired(start_endpoint):
    endpoint = start_endpoint()
    real = endpoint.subscribe()
    never_minted = {**real, "endpoint": f"{endpoint.origin}/push/never-minted"}
    outcome = channel().send(en_route(never_minted))
    assert outcome.status == "rejected" and outcome.detail.startswith(f"{EXPIRED}: 410")
    assert endpoint.received() == []


def test_a_browser_that_turned_notifications_off_is_rejected_as_expired(start_endpoint):
    endpoint = start_endpoint()
    subscription = endpoint.subscribe()
    push = channel()
    assert push.send(en_route(subscription)).status == "sent"
    assert requests.delete(subscription["endpoint"], timeout=5).status_code == 204
    gone = push.send(en_route(subscription, "ev-42"))
    assert gone.status == "rejected" and gone.detail.startswith(EXPIRED)
    assert len(endpoint.received()) == 1


def test_a_push_signed_with_another_key_than_the_browser_subscribed_with_is_refused(
        start_endpoint):
    endpoint = start_endpoint()
    subscription = endpoint.subscribe(server_key=vapid_public_key(generate_private_key()))
    outcome = channel().send(en_route(subscription))
    assert outcome.status == "retry" and "403" in outcome.detail
    assert "VAPID_PRIVATE_KEY" in outcome.detail  # what the operator has to look at
    assert endpoint.received() == []


def test_a_stopped_push_service_means_retry(start_endpoint):
    endpoint = start_endpoint()
    subscription = endpoint.subscribe()
    endpoint.stop()
    outcome = channel().send(en_route(subscription))
    assert outcome.status == "retry" and "ConnectionError" in outcome.detail
