"""The SMS and WhatsApp channels against a real HTTP provider: the local fake of
deploy/local/fake_provider.py, run as its own process on a free port. What it records is what a
provider would send to a citizen's phone. A provider that fails, answers too late or not at all
makes a "retry", and the same delivery sent again is taken once: a message the provider already
had comes back "sent" under its first id, never as a second SMS. A message it will never send is
"rejected"; a token it refuses is our settings' fault, and a "retry"."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from services.notifications.channels import Attachment, Delivery
from services.notifications.messages import Message
from services.notifications.phones import SmsChannel, WhatsAppChannel
from tests.support import LocalServer, wait_for

pytestmark = pytest.mark.integration

PROVIDER = Path(__file__).resolve().parents[2] / "deploy" / "local" / "fake_provider.py"
TOKEN = "tok_local_8c41e2"
TIMEOUT = 0.5  # seconds the channels wait for an answer: the slow and hung cases exceed it
FOLIO = "QRO-2026-000123"
MESSAGE = Message(
    subject=f"Cuadrilla en camino · {FOLIO}",
    text=f"La cuadrilla ya salió hacia el bache de la calle Ñandú ({FOLIO}); llega a las 10:25.",
    html="<p>La cuadrilla ya salió.</p>",
    sms=f"La cuadrilla ya salio hacia su bache {FOLIO}: https://seguimiento.example/{FOLIO}",
)


class FakeProvider(LocalServer):
    """One fake_provider.py process on a free port, logging to a folder of the test's own."""

    def __init__(self, folder: Path) -> None:
        self.journal = folder / "messages.jsonl"
        super().__init__(folder, "fake_provider.py", "--token", TOKEN, "--log",
                         str(self.journal))
        self.start()

    def mode(self, **mode: Any) -> None:
        requests.post(f"{self.url}/_mode", json=mode, timeout=5).raise_for_status()

    def messages(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/_messages", timeout=5)
        answer.raise_for_status()
        return answer.json()

    def sms(self, token: str = TOKEN) -> SmsChannel:
        return SmsChannel.from_config({"SMS_API_URL": self.url, "SMS_API_TOKEN": token,
                                       "SMS_SENDER": "LERDO", "SMS_TIMEOUT": TIMEOUT})

    def whatsapp(self) -> WhatsAppChannel:
        return WhatsAppChannel.from_config({
            "WHATSAPP_API_URL": self.url, "WHATSAPP_API_TOKEN": TOKEN,
            "WHATSAPP_SENDER": "+528711234567", "WHATSAPP_TIMEOUT": TIMEOUT})


@pytest.fixture
def provider(tmp_path):
    started = FakeProvider(tmp_path / "provider")
    yield started
    started.stop()


def en_route(key: str = "ev-41:sub-7:sms", message: Message = MESSAGE, **more: Any) -> Delivery:
    """Ana is told, by SMS, that the crew is on its way to her pothole."""
    return Delivery(key=key, address="442-123-4567", message=message, **more)


def test_ana_s_sms_is_taken_once_under_the_provider_s_id(provider):
    outcome = provider.sms().send(en_route())
    assert outcome.status == "sent"
    [message] = provider.messages()
    assert message["id"] == outcome.provider_id
    assert message["idempotency_key"] == "ev-41:sub-7:sms"
    assert message["body"] == {"to": "+524421234567", "from": "LERDO", "body": MESSAGE.sms}
    [logged] = [json.loads(line) for line in provider.journal.read_text().splitlines()]
    assert logged["headers"]["Idempotency-Key"] == "ev-41:sub-7:sms"
    assert logged["headers"]["Authorization"] is True
    assert TOKEN not in provider.journal.read_text()


def test_a_statement_on_whatsapp_arrives_as_the_document_it_was(provider):
    statement = Attachment("estado-de-cuenta.pdf", "application/pdf", b"%PDF-1.7\n\xff\x00%%EOF")
    outcome = provider.whatsapp().send(en_route("ev-9:sub-7:whatsapp", purpose="document",
                                                attachment=statement, language="en"))
    assert outcome.status == "sent"
    [message] = provider.messages()
    assert message["body"]["template"] == {"name": "expediente_documento", "language": "en",
                                           "parameters": [MESSAGE.sms]}
    assert base64.b64decode(message["body"]["document"]["data"]) == statement.data


def test_a_provider_that_failed_once_takes_the_same_message_on_the_next_attempt(provider):
    channel = provider.sms()
    provider.mode(fail=1, status=500)
    refused = channel.send(en_route())
    assert (refused.status, refused.detail, provider.messages()) == (
        "retry", "500 forced 500 by /_mode", [])
    taken = channel.send(en_route())
    assert taken.status == "sent"
    assert [message["id"] for message in provider.messages()] == [taken.provider_id]


def test_a_provider_that_is_down_is_retried_every_time_and_nothing_is_sent(provider):
    channel = provider.sms()
    provider.mode(status=503, forever=True)
    outcomes = [channel.send(en_route()) for _ in range(3)]
    assert [outcome.status for outcome in outcomes] == ["retry"] * 3
    assert all(outcome.detail.startswith("503") for outcome in outcomes)
    assert provider.messages() == []
    provider.mode(reset=True)
    assert channel.send(en_route()).status == "sent"


def test_an_answer_later_than_the_timeout_is_retried_and_the_resend_is_not_a_second_sms(provider):
    channel = provider.sms()
    provider.mode(delay=30)  # takes the message, and answers long after we stopped waiting
    late = channel.send(en_route())
    assert (late.status, late.provider_id) == ("retry", None)
    assert "timed out" in late.detail.lower()
    [had] = wait_for(provider.messages, timeout=10, message="the provider recording it")
    provider.mode(reset=True)
    resent = channel.send(en_route())
    assert (resent.status, resent.provider_id) == ("sent", had["id"])
    assert "already taken" in resent.detail
    assert [message["id"] for message in provider.messages()] == [had["id"]]


def test_a_provider_that_never_answers_is_retried_after_the_timeout(provider):
    channel = provider.sms()
    provider.mode(hang=True)
    hung = channel.send(en_route())
    assert (hung.status, provider.messages()) == ("retry", [])
    assert "timed out" in hung.detail.lower()
    provider.mode(reset=True)
    taken = channel.send(en_route())
    assert taken.status == "sent"
    assert [message["id"] for message in provider.messages()] == [taken.provider_id]


def test_the_same_delivery_sent_twice_is_one_message_and_another_step_another(provider):
    channel = provider.sms()
    first, again = channel.send(en_route()), channel.send(en_route())
    other = channel.send(en_route("ev-42:sub-7:sms"))
    assert [first.status, again.status, other.status] == ["sent"] * 3
    assert first.provider_id == again.provider_id != other.provider_id
    assert [message["id"] for message in provider.messages()] == [
        first.provider_id, other.provider_id]


def test_a_message_the_provider_will_not_send_is_rejected_with_its_reason(provider):
    essay = Message(subject="", text="", html="", sms="Su reporte " * 200)  # 2,200 characters
    outcome = provider.sms().send(en_route(message=essay))
    assert (outcome.status, outcome.detail) == ("rejected", "400 'body' exceeds 1600 characters")
    assert provider.messages() == []


def test_a_token_the_provider_refuses_is_retried_and_never_repeated(provider):
    wrong = "tok_revoked_0000"
    outcome = provider.sms(token=wrong).send(en_route())
    assert (outcome.status, outcome.detail) == ("retry", "401 invalid or missing bearer token")
    assert wrong not in repr(outcome)
    assert provider.messages() == []


def test_a_stopped_provider_means_retry(provider):
    channel = provider.sms()
    provider.stop()
    outcome = channel.send(en_route())
    assert outcome.status == "retry" and outcome.detail.startswith("ConnectionError")
