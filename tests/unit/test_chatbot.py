"""The chatbot's conversation as stories of citizens writing in, told as pure function calls on
the seed catalog; then the webhook's conversation step with the real intake store and fakes for
tracking and notifications (retries, two messages at once)."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.application import IntakeApplication
from services.intake.catalog import Question, ServiceDefinition
from services.intake.chatbot import conversation as chatbot
from services.intake.chatbot import http as chatbot_http
from services.intake.chatbot.conversation import Inbound
from services.intake.dependencies import seed_catalog
from services.intake.store import IntakeStore
from shared.chassis.sqlstore import SqliteStore

CATALOG = sorted(seed_catalog(), key=lambda s: (s.group, s.name))  # as intake.catalog() lists it
HERE = {"lat": 20.5931, "long": -100.392}
NEARBY = [{"folio": "QRO-2026-000007", "lat": 20.59312, "long": -100.39201, "distance_m": 2.4}]


class Chat:
    """One citizen's side of a conversation; the outside world's answers are given by the test."""

    def __init__(self, catalog=CATALOG, nearby=()):
        self.catalog = catalog
        self.nearby = list(nearby)
        self.state = None
        self.texts: list[str] = []
        self.action = None

    def says(self, text="", **extra) -> Chat:
        self.state, self.texts, self.action = chatbot.reply(
            self.state, Inbound(text=text, **extra), self.catalog)
        json.dumps(self.state)  # the state is stored as JSON: it must always be JSON-ready
        if isinstance(self.action, chatbot.LookForDuplicates):
            self.state, more = chatbot.after_lookup(self.state, self.nearby, self.catalog)
            self.texts = self.texts + more
        return self

    @property
    def step(self):
        return None if self.state is None else self.state["step"]

    @property
    def said(self) -> str:
        return "\n".join(self.texts)

    def menu_number(self, name: str) -> str:
        return re.search(rf"^(\d+)\. {re.escape(name)}$", self.said, re.M).group(1)


def at_step(step: str) -> Chat:
    """A pothole report that has got as far as `step`."""
    chat = Chat().says("hola")
    for text, reached in [("bache", "ubicacion"), ("20.5931, -100.392", "pregunta"),
                          ("grande", "descripcion"), ("Bache frente a la escuela", "foto"),
                          ("omitir", "confirmar")]:
        if chat.step == step:
            return chat
        assert chat.says(text).step == reached, chat.said
    return chat


def test_a_citizen_reports_a_pothole_in_her_own_words_and_gets_a_folio():
    chat = Chat().says("hola")
    assert "¿Qué quieres reportar?" in chat.said and "Bache" in chat.said
    assert "Entendido: Bache." in chat.says("Hay un hoyo en la calle").said
    assert chat.step == "ubicacion"
    assert "¿Qué tamaño tiene el bache?" in chat.says("20.5931, -100.392").said
    chat.says("3")
    assert chat.says("Bache profundo frente a la escuela").step == "foto"
    summary = chat.says("omitir").said
    assert "• Tipo: Bache" in summary and "Grande (más de 1 m)" in summary
    assert summary.endswith("¿Confirmas? (sí/no)")
    chat.says("Sí")
    assert chat.action == chatbot.Submit(
        chat.state["id"], "bache", "Bache profundo frente a la escuela",
        {"lat": 20.5931, "long": -100.392}, {"tamano": "grande"}, [])
    state, texts = chatbot.after_submit(chat.state, {
        "folio": "QRO-2026-000123", "status_url": "http://t/seguimiento/QRO-2026-000123",
        "subscribed": True})
    assert state["step"] == "hecho" and state["folio"] == "QRO-2026-000123"
    assert "QRO-2026-000123" in texts[0]
    assert "Consulta su estado en http://t/seguimiento/QRO-2026-000123" in texts


def test_a_category_is_chosen_by_its_number_in_the_menu():
    chat = Chat().says("hola")
    number = chat.menu_number("Recolección de basura")
    assert "Entendido: Recolección de basura." in chat.says(number).said
    assert chat.state["service"] == "recoleccion_basura"


@pytest.mark.parametrize("text, code", [
    ("luminaria", "alumbrado_publico"), ("LA LUMINARIA NO PRENDE", "alumbrado_publico"),
    ("hoyo en la calle", "bache"), ("baches", "bache"), ("un árbol se cayó", "poda_arbol"),
    ("arbol", "poda_arbol"), ("Semaforo", "semaforo"), ("salen aguas negras", "drenaje_obstruido"),
    ("Fuga de agua", "fuga_agua"), ("basurero", "recoleccion_basura"),
])
def test_categories_are_found_by_name_or_keyword_whatever_the_accents(text, code):
    chat = Chat().says("hola").says(text)
    assert chat.state["service"] == code, chat.said


def test_a_first_message_that_names_the_problem_skips_the_menu():
    chat = Chat().says("hay un bache enorme")
    assert chat.step == "ubicacion" and chat.state["service"] == "bache"


def test_an_ambiguous_description_lists_the_top_matches_and_asks_again():
    chat = Chat().says("hola").says("se fue la luz del semáforo")
    assert chat.step == "categoria" and "Encontré varias opciones" in chat.said
    assert chat.says(chat.menu_number("Semáforo descompuesto")).state["service"] == "semaforo"


def test_an_address_instead_of_coordinates_is_kept_as_the_address():
    chat = Chat(nearby=NEARBY).says("bache").says("Av. Zaragoza 123, col. Centro")
    assert chat.state["location"] == {"address": "Av. Zaragoza 123, col. Centro"}
    assert chat.action is None and chat.step == "pregunta"  # no point: no duplicate lookup


@pytest.mark.parametrize("message, point", [
    ({"lat": 20.61, "long": -100.41}, (20.61, -100.41)),
    ({"text": "20,5931 -100,392"}, (20.5931, -100.392)),
    ({"text": "https://maps.google.com/?q=20.5931,-100.392"}, (20.5931, -100.392)),
])
def test_a_shared_location_or_typed_coordinates_are_looked_up_for_duplicates(message, point):
    chat = Chat().says("bache").says(**message)
    assert chat.action == chatbot.LookForDuplicates("bache", *point)
    assert chat.state["location"] == {"lat": point[0], "long": point[1]}


def test_required_questions_are_asked_in_order_and_optional_ones_are_not():
    chat = Chat().says("basura").says("20.5931, -100.392")
    assert "¿Qué sucede?" in chat.said
    assert chat.says("basura acumulada").state["answers"] == {"tipo": "acumulada"}
    assert chat.step == "descripcion"  # "¿Cuántos días lleva sin pasar?" is optional


@pytest.mark.parametrize("text, keys", [
    ("1, 3", ["tapado", "sin_tapa"]), ("1 3", ["tapado", "sin_tapa"]),
    ("está tapado y mal olor", ["tapado", "olor"]), ("Brotan aguas negras", ["brote"]),
])
def test_a_question_with_several_answers_takes_them_separated_by_commas(text, keys):
    chat = Chat().says("drenaje").says("20.5931, -100.392")
    assert "separadas por comas" in chat.said
    assert chat.says(text).state["answers"] == {"problema": keys}


def test_a_multivalue_answer_with_an_unknown_part_says_which():
    chat = Chat().says("drenaje").says("20.5931, -100.392").says("1, 9")
    assert chat.step == "pregunta" and "No reconocí: 9" in chat.said


def test_a_number_question_takes_a_decimal_comma_and_a_date_question_a_date():
    measured = ServiceDefinition(
        code="arbol_medido", name="Árbol medido", group="Parques", department="parques",
        keywords=("ramas",), questions=(
            Question("altura", "number", "¿Qué altura tiene?", required=True, order=1),
            Question("desde", "datetime", "¿Desde cuándo?", required=True, order=2)))
    chat = Chat(catalog=[measured]).says("ramas").says("Parque Alameda, Centro")
    assert "responde con un número" in chat.said
    assert "Responde con un número" in chat.says("altísimo").said
    chat.says("2,5 metros").says("22/11/2026")
    assert chat.state["answers"] == {"altura": 2.5, "desde": "2026-11-22T00:00:00"}


def test_going_back_one_step_at_a_time():
    chat = at_step("confirmar")
    assert chat.says("atrás").step == "foto"
    assert chat.says("atras").step == "descripcion"
    assert chat.says("Atrás").step == "pregunta" and "tamaño" in chat.said
    assert chat.says("atrás").step == "ubicacion"
    assert chat.says("atrás").step == "categoria" and chat.state["service"] is None
    assert "Ya estás en el primer paso." in chat.says("atrás").said


def test_a_wrong_answer_corrected_after_going_back():
    chat = at_step("descripcion").says("atrás").says("chico")
    assert chat.state["answers"] == {"tamano": "chico"} and chat.step == "descripcion"


@pytest.mark.parametrize("step", ["categoria", "ubicacion", "pregunta", "descripcion", "foto",
                                  "confirmar"])
@pytest.mark.parametrize("word", ["cancelar", "Salir"])
def test_cancelling_at_any_step_ends_the_conversation(step, word):
    chat = at_step(step).says(word)
    assert chat.state is None and "cancelé" in chat.said


@pytest.mark.parametrize("word", ["reiniciar", "empezar", "Hola", "hola buenas tardes"])
def test_restarting_at_any_time_starts_a_new_conversation(word):
    chat = at_step("foto")
    before = chat.state["id"]
    chat.says(word)
    assert chat.step == "categoria" and chat.state["service"] is None
    assert chat.state["id"] != before and chat.state["answers"] == {}
    assert "¿Qué quieres reportar?" in chat.said


def test_help_explains_and_asks_the_same_step_again():
    chat = at_step("ubicacion").says("ayuda")
    assert "atrás" in chat.said and "¿Dónde está el problema?" in chat.said
    assert chat.step == "ubicacion"
    assert "hola" in Chat().says("ayuda").said


@pytest.mark.parametrize("step, garbage", [
    ("categoria", "xyzzy"), ("categoria", "99"), ("categoria", ""), ("ubicacion", "??"),
    ("ubicacion", "aqui"), ("ubicacion", "999.1, 5.5"), ("pregunta", "enorme"),
    ("pregunta", "7"), ("descripcion", ""), ("descripcion", "!!"), ("foto", "tal vez"),
    ("confirmar", "quién sabe"), ("confirmar", ""),
])
def test_input_a_step_cannot_read_gets_the_question_again_and_changes_nothing(step, garbage):
    chat = at_step(step)
    before = chat.state
    chat.says(garbage)
    assert chat.step == step and chat.action is None
    assert {**chat.state, "options": None} == {**before, "options": None}
    assert chat.texts and len(chat.said) > 10


def test_a_report_open_nearby_is_offered_and_the_citizen_follows_it():
    chat = Chat(nearby=NEARBY).says("bache").says(lat=20.5931, long=-100.392)
    assert chat.step == "duplicado"
    assert ("Ya hay un reporte abierto cerca: QRO-2026-000007 (a 2 m). Responde 'seguir' para "
            "seguirlo o 'nuevo' para crear el tuyo.") in chat.said
    assert "Responde 'seguir' o 'nuevo'." in chat.says("¿qué?").said
    chat.says("seguir")
    assert chat.action == chatbot.Follow("QRO-2026-000007")
    state, texts = chatbot.after_follow(chat.state, "http://t/seguimiento/QRO-2026-000007", True)
    assert state["step"] == "hecho" and "sigues el reporte QRO-2026-000007" in texts[0]


def test_a_citizen_who_wants_her_own_report_despite_one_nearby_goes_on():
    chat = Chat(nearby=NEARBY).says("bache").says(**HERE).says("nuevo")
    assert chat.step == "pregunta" and "¿Qué tamaño tiene el bache?" in chat.said
    assert chat.says("atrás").step == "ubicacion"


def test_a_photo_is_kept_when_sent_or_skipped_on_request():
    chat = at_step("foto").says(media_url="https://cdn.example/p/1.jpg")
    assert chat.step == "confirmar" and chat.state["media_urls"] == ["https://cdn.example/p/1.jpg"]
    assert "• Foto: sí" in chat.said
    assert at_step("foto").says("no").state["media_urls"] == []


def test_a_photo_sent_early_with_a_caption_is_kept_and_the_photo_step_skipped():
    chat = at_step("descripcion").says("El bache ya rompió una llanta",
                                       media_url="https://cdn.example/p/2.jpg")
    assert chat.step == "confirmar" and chat.state["media_urls"] == ["https://cdn.example/p/2.jpg"]
    alone = at_step("ubicacion").says(media_url="https://cdn.example/p/3.jpg")
    assert alone.step == "ubicacion" and "Recibí tu foto." in alone.said


def test_saying_no_at_the_confirmation_sends_nothing_and_explains_how_to_correct():
    chat = at_step("confirmar").says("no")
    assert chat.step == "confirmar" and chat.action is None and "atrás" in chat.said


def test_a_category_retired_mid_conversation_sends_the_citizen_back_to_the_menu():
    chat = at_step("descripcion")
    chat.catalog = [s for s in CATALOG if s.code != "bache"]
    assert chat.says("Bache profundo").step == "categoria" and "ya no está disponible" in chat.said


def test_a_message_after_the_folio_starts_a_new_report():
    chat = at_step("confirmar").says("si")
    chat.state, _ = chatbot.after_submit(chat.state, {"folio": "QRO-2026-000001"})
    first = chat.state["id"]
    chat.says("también hay una fuga de agua")
    assert chat.state["service"] == "fuga_agua" and chat.state["id"] != first


def test_the_same_message_id_is_answered_once_and_replayed_after():
    state, replies, _ = chatbot.reply(None, Inbound("hola", message_id="m1"), CATALOG)
    state = chatbot.remember(state, Inbound("hola", message_id="m1"), replies)
    assert chatbot.replay(state, Inbound("hola", message_id="m1")) == (replies, None)
    assert chatbot.replay(state, Inbound("bache", message_id="m2")) is None
    state = chatbot.remember(state, Inbound("bache", message_id="m2"), ["…"])
    assert chatbot.replay(state, Inbound("hola", message_id="m1")) == ([], None)


# ---- the webhook's conversation step, with the real store and fakes around it ----------------


class FakeTracking:
    def __init__(self, nearby=(), pause=0.0):
        self.opened: list[dict] = []
        self.nearby = list(nearby)
        self.pause = pause

    def open_report(self, payload, on_behalf_of):
        self.opened.append(payload)
        return {"folio": f"QRO-2026-{len(self.opened):06d}", "access_token": "tok",
                "opened_at": "2026-11-22T10:00:00-06:00", "due_at": None}

    def open_nearby(self, service_code, bbox):
        time.sleep(self.pause)  # a slow lookup: the window for a second message to slip in
        return self.nearby

    def public_report(self, folio, access_token=None):
        return None


class FakeContacts:
    def __init__(self):
        self.requests: list[dict] = []

    def subscribe(self, request):
        self.requests.append(request)


@pytest.fixture
def intake():
    store = IntakeStore(SqliteStore(":memory:"))
    store.seed(seed_catalog())
    return IntakeApplication(store, FakeTracking(), FakeContacts(), status_url="http://t/s")


SENDER = "whatsapp:+5214421234567"


def send(intake, text="", message_id=None, **extra):
    message = Inbound(text=text, message_id=message_id, **extra)
    with chatbot_http.LOCKS.hold(SENDER):
        return chatbot_http.converse(intake, SENDER, message)


def test_a_provider_retrying_the_confirmation_gets_one_report_and_the_same_answer(intake):
    for n, text in enumerate(["bache", "20.5931, -100.392", "2", "Bache en la esquina",
                              "omitir"]):
        send(intake, text, message_id=f"m{n}")
    replies, folio = send(intake, "sí", message_id="m-confirm")
    assert folio == "QRO-2026-000001" and any(folio in r for r in replies)
    assert send(intake, "sí", message_id="m-confirm") == (replies, folio)
    assert len(intake.tracking.opened) == 1
    assert intake.tracking.opened[0]["channel"] == "chatbot"
    assert intake.store.conversation(SENDER)[0]["step"] == "hecho"
    subscription = intake.contacts.requests[0]
    assert subscription["contact"] == {"phone": "+5214421234567", "notify_by": ["whatsapp"]}


def test_a_repeated_message_id_does_not_advance_the_conversation(intake):
    send(intake, "bache", message_id="a")
    first = send(intake, "Av. Zaragoza 123, Centro", message_id="b")
    assert send(intake, "Av. Zaragoza 123, Centro", message_id="b") == first
    assert intake.store.conversation(SENDER)[0]["step"] == "pregunta"


def test_two_messages_from_one_sender_at_once_are_handled_one_after_the_other(intake):
    intake.tracking.pause = 0.3
    send(intake, "bache", message_id="a")
    threads = [threading.Thread(target=send, args=(intake, text), kwargs={"message_id": mid})
               for text, mid in [("20.5931, -100.392", "b"), ("Av. Zaragoza 123, Centro", "c")]]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    state = intake.store.conversation(SENDER).state
    assert state["seen"] == ["a", "b", "c"]  # neither message's step was lost
    assert state["location"] == HERE and state["step"] == "pregunta"


def test_a_sender_without_a_phone_number_reports_without_being_subscribed():
    assert chatbot_http.contact_of("telegram:user_42") is None
    assert chatbot_http.contact_of("sms:+524421234567")["notify_by"] == ["sms"]


def test_a_step_taken_on_a_stale_conversation_is_taken_again_on_the_fresh_one(intake):
    """Two replicas get two messages from one sender at once: the second to save finds the
    conversation moved and repeats its step on what the first saved, instead of overwriting it."""
    store = intake.store
    chatbot_http.converse(intake, SENDER, Inbound(text="hola", message_id="m-1"))
    state, version, _ = store.conversation(SENDER)
    real_conversation = store.conversation
    calls = {"n": 0}

    def racing(sender):
        calls["n"] += 1
        if calls["n"] == 1:  # another replica saves between our read and our write
            found = real_conversation(sender)
            store.save_conversation(sender, {**found[0], "other": True}, found[1])
            return found
        return real_conversation(sender)

    store.conversation = racing
    try:
        chatbot_http.converse(intake, SENDER, Inbound(text="bache", message_id="m-2"))
    finally:
        store.conversation = real_conversation
    final, final_version, _ = store.conversation(SENDER)
    assert calls["n"] == 2 and final.get("other") is True and final_version == version + 2


def test_a_conversation_left_half_way_for_a_day_starts_over_with_the_next_message(intake):
    send(intake, "bache")
    send(intake, "20.5931, -100.392")
    with intake.store.sql.transaction() as tx:  # a day and a bit later
        tx.execute("UPDATE intake_conversations SET updated_at = %s WHERE sender = %s",
                   ((datetime.now(UTC) - timedelta(hours=25)).isoformat(), SENDER))

    replies, folio = send(intake, "hay basura tirada")

    assert folio is None and "a medias" in replies[0]
    state = intake.store.conversation(SENDER).state
    assert state["service"] != "bache" and state["location"] is None


def test_a_conversation_paused_for_an_hour_goes_on_where_it_was(intake):
    send(intake, "bache")
    with intake.store.sql.transaction() as tx:
        tx.execute("UPDATE intake_conversations SET updated_at = %s WHERE sender = %s",
                   ((datetime.now(UTC) - timedelta(hours=1)).isoformat(), SENDER))
    replies, _ = send(intake, "20.5931, -100.392")
    assert not any("a medias" in r for r in replies)
    assert intake.store.conversation(SENDER).state["location"] is not None


def test_a_finished_conversation_does_not_expire_it_simply_ends():
    done = {"step": chatbot.DONE, "seen": ["m1"]}
    assert chatbot.expire(done, timedelta(days=3), timedelta(hours=24)) == (done, [])
    assert chatbot.expire(None, timedelta(days=3), timedelta(hours=24)) == (None, [])
