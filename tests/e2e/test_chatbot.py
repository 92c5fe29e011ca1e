"""The chatbot webhook against running tracking and intake: a citizen chats her way to a folio,
the conversation outlives a restart of intake, a provider's retry changes nothing, and the
webhook refuses strangers and malformed messages."""

from __future__ import annotations

import os
import random
import uuid

import pytest
import requests

from tests.support import bearer, wait_for

pytestmark = pytest.mark.e2e

SECRET = os.environ.get("CHATBOT_SECRET", "expediente-chatbot-dev")


def new_sender() -> str:
    return f"whatsapp:+521442{random.randrange(10**7):07d}"


def somewhere() -> dict[str, float]:
    """A point of its own, so that no other test's report is open nearby."""
    return {"lat": round(20.5 + random.random() / 10, 6), "long": round(-100.4 + random.random()
                                                                        / 10, 6)}


def say(stack, sender, text="", *, message_id=None, secret=SECRET, **extra):
    body = {"sender": sender, "text": text, **extra}
    body["message_id"] = message_id or uuid.uuid4().hex
    return requests.post(f"{stack.intake.url}/chatbot/webhook", json=body,
                         headers={"X-Chatbot-Secret": secret}, timeout=30)


def chat(stack, sender, *messages):
    """Send each message in turn; every one must be answered."""
    answer = None
    for message in messages:
        response = (say(stack, sender, **message) if isinstance(message, dict)
                    else say(stack, sender, message))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["sender"] == sender and answer["replies"], answer
    return answer


def staff_view(stack, folio):
    def found():
        response = requests.get(f"{stack.tracking.url}/reports/{folio}",
                                headers=bearer("supervisor"), timeout=10)
        return response.json() if response.status_code == 200 else None

    return wait_for(found, message=f"{folio} in tracking's staff view")


def test_a_citizen_chats_her_way_to_a_folio_recorded_as_a_chatbot_report(stack):
    sender = new_sender()
    chat(stack, sender, "hola")
    answer = chat(stack, sender, "hay un hoyo en la calle", {"location": somewhere()}, "grande",
                  "Bache profundo frente a la escuela",
                  {"media_url": "https://fotos.example.mx/bache.jpg"})
    assert answer["replies"][-1].endswith("¿Confirmas? (sí/no)")
    answer = chat(stack, sender, "sí")
    folio = answer["folio"]
    assert folio.startswith("QRO-") and any(folio in reply for reply in answer["replies"])
    assert any(f"/seguimiento/{folio}" in reply for reply in answer["replies"])
    report = staff_view(stack, folio)
    assert report["channel"] == "chatbot" and report["service"]["code"] == "bache"
    assert report["attributes"] == {"tamano": "grande"}
    assert report["media_urls"] == ["https://fotos.example.mx/bache.jpg"]
    assert "+521442" not in str(report)  # the phone went to notifications, not the report


def test_a_conversation_outlives_a_restart_of_intake(stack):
    sender = new_sender()
    answer = chat(stack, sender, "luminaria", "Av. Zaragoza 123, col. Centro")
    assert "¿Qué le pasa a la luminaria?" in answer["replies"][-1]
    stack.restart_intake()
    answer = chat(stack, sender, "apagada", "La luminaria de la esquina lleva días apagada",
                  "omitir", "si")
    assert staff_view(stack, answer["folio"])["channel"] == "chatbot"


def test_a_provider_retrying_a_message_changes_nothing(stack):
    sender = new_sender()
    chat(stack, sender, "basura")
    first = say(stack, sender, text="20.61, -100.41", message_id="wamid.location")
    again = say(stack, sender, text="20.61, -100.41", message_id="wamid.location")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    answer = chat(stack, sender, "1")  # taken as the answer to "¿Qué sucede?", asked only once
    assert "Describe el problema" in answer["replies"][-1]
    chat(stack, sender, "No ha pasado el camión en toda la semana", "no")
    confirmed = say(stack, sender, text="sí", message_id="wamid.confirm").json()
    retried = say(stack, sender, text="sí", message_id="wamid.confirm").json()
    assert retried == confirmed and confirmed["folio"].startswith("QRO-")


def test_a_neighbour_reporting_the_same_pothole_is_offered_to_follow_it_instead(stack):
    here = somewhere()
    first = chat(stack, new_sender(), "bache", {"location": here}, "mediano", "Bache en el cruce",
                 "omitir", "sí")["folio"]
    neighbour = new_sender()
    answer = chat(stack, neighbour, "bache", {"location": here})
    assert (f"Ya hay un reporte abierto cerca: {first}" in answer["replies"][-1]
            and "'seguir'" in answer["replies"][-1])
    answer = chat(stack, neighbour, "seguir")
    assert any(f"sigues el reporte {first}" in reply for reply in answer["replies"])
    assert "folio" not in answer  # no second report
    assert "¿Dónde está el problema?" in chat(stack, neighbour, "hola", "bache")["replies"][-1]


@pytest.mark.parametrize("headers", [{}, {"X-Chatbot-Secret": "wrong"}])
def test_a_caller_without_the_shared_secret_is_refused(stack, headers):
    response = requests.post(f"{stack.intake.url}/chatbot/webhook", headers=headers, timeout=10,
                             json={"sender": new_sender(), "text": "hola"})
    assert response.status_code == 401
    assert "X-Chatbot-Secret" in response.json()["errors"]["authorization"][0]


@pytest.mark.parametrize("body, field", [
    ({"text": "hola"}, "sender"),
    ({"sender": "whatsapp:+5214421234567", "text": "x" * 2001}, "text"),
    ({"sender": "whatsapp:+5214421234567", "channel": "sms"}, "channel"),
    ({"sender": "whatsapp:+5214421234567", "location": {"lat": 95, "long": 0}}, "location"),
    ({"sender": "whatsapp:+5214421234567", "media_url": "ftp://x/y.jpg"}, "media_url"),
    ({"sender": "whatsapp:+5214421234567", "message_id": ""}, "message_id"),
    ([], "_body"),
])
def test_a_malformed_message_gets_a_400_that_names_the_field(stack, body, field):
    response = requests.post(f"{stack.intake.url}/chatbot/webhook", json=body, timeout=10,
                             headers={"X-Chatbot-Secret": SECRET})
    assert response.status_code == 400, response.text
    assert field in response.json()["errors"]
