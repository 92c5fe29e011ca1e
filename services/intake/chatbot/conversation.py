"""The chatbot's conversation, as a pure state machine: category → location → [a report already
open nearby?] → the category's required questions → description → optional photo → confirmation
→ folio. `reply` takes the stored state and one message and answers the new state, the texts to
send and, where the conversation needs the outside world, an action (look for duplicates, submit,
follow a folio) whose outcome comes back through `after_lookup`, `after_submit`, `after_follow`
or `submit_failed`. The state is a JSON-ready dict so that it survives a restart."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from shared.contracts.fields import media_url_problem

from ..catalog import Question, ServiceDefinition
from ..schemas import TRUSTED_MEDIA
from . import text as words

CATEGORY, LOCATION, DUPLICATE, QUESTION = "categoria", "ubicacion", "duplicado", "pregunta"
DESCRIPTION, PHOTO, CONFIRM, DONE = "descripcion", "foto", "confirmar", "hecho"
MAX_PHOTOS = 5
BAD_PHOTO_LINK = "No puedo usar ese enlace como foto: envía la foto misma o un enlace https://."
SEEN = 20  # message ids remembered per sender, so that a provider's retry changes nothing


@dataclass(frozen=True)
class Inbound:
    """One message from a citizen, as the webhook received it."""

    text: str = ""
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class LookForDuplicates:
    service_code: str
    lat: float
    long: float


@dataclass(frozen=True)
class Submit:
    """The citizen confirmed: open the report (idempotent per conversation)."""

    conversation_id: str
    service_code: str
    description: str
    location: dict[str, Any]
    answers: dict[str, Any] = field(default_factory=dict)
    media_urls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Follow:
    """The citizen chose to follow the report already open nearby instead of a new one."""

    folio: str


Action = LookForDuplicates | Submit | Follow
State = dict[str, Any]
Answer = tuple[State | None, list[str], Action | None]


# ---- the conversation ----------------------------------------------------------------------


def reply(state: State | None, message: Inbound, catalog: list[ServiceDefinition]) -> Answer:
    """The conversation's next move after `message`; never raises on what a citizen types."""
    said = words.command(message.text)
    if said == "cancel":
        return None, [words.CANCELLED], None
    if said == "help":
        if state is None or state["step"] == DONE:
            return state, [words.HELP, words.START], None
        return state, [words.HELP, prompt(state, catalog)], None
    if state is None or state["step"] == DONE or said == "restart":
        fresh, texts, action = start(message if said is None else Inbound(), catalog)
        # A new conversation always has a state (start's Answer may say None for others).
        return {**cast(State, fresh), **_retries(state)}, texts, action
    service = _service(state, catalog)
    if service is None and state["step"] != CATEGORY:
        state, texts = _go(_reset(state, catalog), CATEGORY, catalog)
        return state, ["Esa categoría ya no está disponible; elige otra."] + texts, None
    if state["step"] == QUESTION and state["question"] >= len(questions(service)):
        state, texts = _go(state, QUESTION, catalog, state["question"])  # a question was removed
        return state, texts, None
    if said == "back":
        state, texts = back(state, catalog)
        return state, texts, None
    state, kept = _keep_photo(state, message)
    return STEPS[state["step"]](state, message, catalog, kept)


def start(message: Inbound, catalog: list[ServiceDefinition]) -> Answer:
    """A new conversation; a first message that already names the problem skips the menu."""
    state: State = {"id": uuid.uuid4().hex[:16], "step": CATEGORY, "options": [],
                    "service": None, "location": None, "question": 0, "answers": {},
                    "description": None, "media_urls": [], "duplicate": None, "folio": None}
    found = words.rank_services(message.text, catalog) if message.text.strip() else []
    if len(found) == 1:
        return _chose(state, found[0], catalog)
    if found:
        state["options"] = [s.code for s in found]
        return state, [words.WELCOME, words.menu("¿Cuál de estos es tu problema?", found)], None
    state = _reset(state, catalog)
    return state, [words.WELCOME, prompt(state, catalog)], None


def _on_category(state: State, message: Inbound, catalog: list[ServiceDefinition],
                 kept: bool) -> Answer:
    by_code = {s.code: s for s in catalog}
    options = [by_code[c] for c in state["options"] if c in by_code]
    number = words.menu_number(message.text)
    if number is not None:
        if 1 <= number <= len(options):
            return _chose(state, options[number - 1], catalog)
        return state, [f"Elige un número del 1 al {len(options)}.", prompt(state, catalog)], None
    found = words.rank_services(message.text, catalog)
    if len(found) == 1:
        return _chose(state, found[0], catalog)
    if found:
        state = {**state, "options": [s.code for s in found]}
        ask = words.menu("Encontré varias opciones. ¿Cuál es tu problema?", found)
        return state, [ask], None
    state = _reset(state, catalog)
    return state, ["No identifiqué el tipo de problema.", prompt(state, catalog)], None


def _chose(state: State, service: ServiceDefinition, catalog: list[ServiceDefinition]) -> Answer:
    state = {**state, "service": service.code, "options": [], "answers": {}}
    state, texts = _go(state, LOCATION, catalog)
    return state, [f"Entendido: {service.name}."] + texts, None


def _on_location(state: State, message: Inbound, catalog: list[ServiceDefinition],
                 kept: bool) -> Answer:
    point = ((message.lat, message.long) if message.lat is not None and message.long is not None
             else words.point(message.text))
    if point is not None:
        state = {**state, "location": {"lat": point[0], "long": point[1]}}
        return state, [], LookForDuplicates(state["service"], point[0], point[1])
    address = words.address(message.text)
    if address is not None:
        state, texts = _go({**state, "location": {"address": address}}, QUESTION, catalog)
        return state, texts, None
    return state, _again(kept, "No reconocí la ubicación.", prompt(state, catalog)), None


def after_lookup(state: State, reports: list[dict[str, Any]],
                 catalog: list[ServiceDefinition]) -> tuple[State, list[str]]:
    """Offer the nearest open report of the same category, if there is one."""
    nearest = next((r for r in reports if r.get("folio") or r.get("service_request_id")), None)
    if nearest is None:
        return _go(state, QUESTION, catalog)
    duplicate = {"folio": nearest.get("folio") or nearest.get("service_request_id"),
                 "distance_m": nearest.get("distance_m")}
    return _go({**state, "duplicate": duplicate}, DUPLICATE, catalog)


def _on_duplicate(state: State, message: Inbound, catalog: list[ServiceDefinition],
                  kept: bool) -> Answer:
    said = words.normalise(message.text)
    if said in ("seguir", "seguirlo", "seguir ese", "1"):
        return state, [], Follow(state["duplicate"]["folio"])
    if said in ("nuevo", "crear", "crear el mio", "el mio", "2"):
        state, texts = _go(state, QUESTION, catalog)
        return state, ["De acuerdo, creamos tu reporte."] + texts, None
    return state, _again(kept, "Responde 'seguir' o 'nuevo'.", prompt(state, catalog)), None


def after_follow(state: State, status_url: str | None, subscribed: bool) -> tuple[State,
                                                                                  list[str]]:
    folio = state["duplicate"]["folio"]
    told = " Te avisaremos por este medio de cada avance." if subscribed else ""
    texts = [f"Listo, ahora sigues el reporte {folio}.{told}"]
    if status_url:
        texts.append(f"Consulta su estado en {status_url}")
    return {**state, "step": DONE, "folio": folio}, texts + [words.ANOTHER]


def _on_question(state: State, message: Inbound, catalog: list[ServiceDefinition],
                 kept: bool) -> Answer:
    index = state["question"]
    question = questions(_service(state, catalog))[index]
    try:
        value = words.answer(question, message.text)
    except ValueError as error:
        return state, _again(kept, str(error), prompt(state, catalog)), None
    state = {**state, "answers": {**state["answers"], question.code: value}}
    state, texts = _go(state, QUESTION, catalog, index + 1)
    return state, texts, None


def _on_description(state: State, message: Inbound, catalog: list[ServiceDefinition],
                    kept: bool) -> Answer:
    text = " ".join(message.text.split())
    if len(words.normalise(text).replace(" ", "")) < 3:
        return state, _again(kept, "Cuéntame un poco más.", prompt(state, catalog)), None
    state, texts = _go({**state, "description": text[:4000]}, PHOTO, catalog)
    return state, texts, None


def _on_photo(state: State, message: Inbound, catalog: list[ServiceDefinition],
              kept: bool) -> Answer:
    link = words.url(message.text)
    if link and media_url_problem(link, TRUSTED_MEDIA):  # tracking takes https or our own media
        return state, [BAD_PHOTO_LINK, "Envía la foto o responde 'omitir'."], None
    if link and link not in state["media_urls"] and len(state["media_urls"]) < MAX_PHOTOS:
        state = {**state, "media_urls": state["media_urls"] + [link]}
    if state["media_urls"] or words.is_skip(message.text):
        state, texts = _go(state, CONFIRM, catalog)
        return state, texts, None
    return state, ["Envía la foto o responde 'omitir'."], None


def _on_confirm(state: State, message: Inbound, catalog: list[ServiceDefinition],
                kept: bool) -> Answer:
    if words.is_yes(message.text):
        return state, [], Submit(state["id"], state["service"], state["description"],
                                 state["location"], state["answers"], state["media_urls"])
    if words.is_no(message.text):
        return state, [words.NOT_SENT], None
    return state, ["Responde 'sí' para enviar tu reporte o 'no' para corregirlo."], None


def after_submit(state: State, receipt: dict[str, Any]) -> tuple[State, list[str]]:
    folio = receipt["folio"]
    texts = [f"¡Listo! Tu reporte quedó registrado con el folio {folio}. Guárdalo para darle "
             "seguimiento."]
    if receipt.get("status_url"):
        texts.append(f"Consulta su estado en {receipt['status_url']}")
    if receipt.get("subscribed"):
        texts.append("Te avisaremos por este medio de cada avance.")
    return {**state, "step": DONE, "folio": folio}, texts + [words.ANOTHER]


def submit_failed(state: State, reason: str) -> tuple[State, list[str]]:
    """`reason`: pending (the same submission is running), invalid, unavailable."""
    return state, [words.FAILED.get(reason, words.FAILED["unavailable"])]


STEPS = {CATEGORY: _on_category, LOCATION: _on_location, DUPLICATE: _on_duplicate,
         QUESTION: _on_question, DESCRIPTION: _on_description, PHOTO: _on_photo,
         CONFIRM: _on_confirm}


# ---- moving between steps ------------------------------------------------------------------


def questions(service: ServiceDefinition | None) -> list[Question]:
    """The questions the chatbot asks: the category's required ones, in order."""
    if service is None:
        return []
    return sorted((q for q in service.questions if q.required and q.variable),
                  key=lambda q: q.order)


def _go(state: State, step: str, catalog: list[ServiceDefinition],
        index: int = 0) -> tuple[State, list[str]]:
    """Move to `step` (past the questions there are none of, or a photo already sent) and ask."""
    if step == QUESTION and index >= len(questions(_service(state, catalog))):
        return _go(state, DESCRIPTION, catalog)
    if step == PHOTO and state["media_urls"]:
        return _go(state, CONFIRM, catalog)
    state = {**state, "step": step, "question": index if step == QUESTION else 0}
    return state, [prompt(state, catalog)]


def back(state: State, catalog: list[ServiceDefinition]) -> tuple[State, list[str]]:
    """One step back, to answer it again."""
    step, count = state["step"], len(questions(_service(state, catalog)))
    if step == CATEGORY:
        return state, ["Ya estás en el primer paso.", prompt(state, catalog)]
    if step == LOCATION:
        return _go(_reset(state, catalog), CATEGORY, catalog)
    if step == QUESTION and state["question"] > 0:
        return _go(state, QUESTION, catalog, state["question"] - 1)
    if step == DESCRIPTION and count:
        return _go(state, QUESTION, catalog, count - 1)
    if step in (DUPLICATE, QUESTION, DESCRIPTION):
        return _go({**state, "duplicate": None}, LOCATION, catalog)
    if step == PHOTO:
        return _go(state, DESCRIPTION, catalog)
    return _go({**state, "media_urls": []}, PHOTO, catalog)  # from the confirmation


def prompt(state: State, catalog: list[ServiceDefinition]) -> str:
    """What the current step asks."""
    step, service = state["step"], _service(state, catalog)
    if step == CATEGORY or service is None:
        by_code = {s.code: s for s in catalog}
        return words.menu(words.ASK_CATEGORY, [by_code[c] for c in state["options"]
                                               if c in by_code])
    if step == DUPLICATE:
        duplicate = state["duplicate"]
        near = f" (a {duplicate['distance_m']:.0f} m)" if duplicate.get("distance_m") else ""
        return (f"Ya hay un reporte abierto cerca: {duplicate['folio']}{near}. Responde "
                "'seguir' para seguirlo o 'nuevo' para crear el tuyo.")
    if step == QUESTION:
        return words.ask(questions(service)[state["question"]])
    if step == CONFIRM:
        return words.summary(service, questions(service), state)
    return {LOCATION: words.ASK_LOCATION, DESCRIPTION: words.ASK_DESCRIPTION,
            PHOTO: words.ASK_PHOTO}[step]


def _reset(state: State, catalog: list[ServiceDefinition]) -> State:
    """Back at the category menu, with every category offered."""
    return {**state, "step": CATEGORY, "options": [s.code for s in catalog], "service": None}


def _service(state: State, catalog: list[ServiceDefinition]) -> ServiceDefinition | None:
    return next((s for s in catalog if s.code == state.get("service")), None)


def _keep_photo(state: State, message: Inbound) -> tuple[State, bool]:
    """A photo may come at any step before the confirmation; it is kept for the report."""
    url = message.media_url
    if not url or state["step"] == CONFIRM or url in state["media_urls"] \
            or len(state["media_urls"]) >= MAX_PHOTOS:
        return state, False
    return {**state, "media_urls": state["media_urls"] + [url]}, True


def _again(kept: bool, problem: str, asked: str) -> list[str]:
    """The step's question again: after a photo alone, say it was kept instead of a complaint."""
    return ["Recibí tu foto.", asked] if kept else [problem, asked]


def expire(state: State | None, idle: timedelta, limit: timedelta) -> tuple[State | None,
                                                                           list[str]]:
    """A conversation left half-way for longer than `limit` is dropped: the next message starts
    a new one (with a word on why) instead of answering a question asked days ago."""
    if state is None or state["step"] == DONE or idle <= limit:
        return state, []
    return {"step": DONE, **_retries(state)}, [words.EXPIRED]


# ---- a provider's retries ------------------------------------------------------------------


def _retries(state: State | None) -> State:
    """What a new conversation keeps from the sender's last one: the message ids answered."""
    return {k: state[k] for k in ("seen", "last") if k in state} if state else {}


def replay(state: State | None, message: Inbound) -> tuple[list[str], str | None] | None:
    """(replies, folio) already given to this message id, or None if it is new."""
    if state is None or not message.message_id or message.message_id not in state.get("seen", ()):
        return None
    last = state.get("last") or {}
    if last.get("message_id") != message.message_id:
        return [], None  # an older message: answered already, say nothing more
    return last.get("replies", []), last.get("folio")


def remember(state: State | None, message: Inbound, replies: list[str],
             folio: str | None = None) -> State | None:
    """Note the message id (and what we answered) so that a retry changes nothing."""
    if state is None or not message.message_id:
        return state
    seen = [m for m in state.get("seen", []) if m != message.message_id][-(SEEN - 1):]
    return {**state, "seen": seen + [message.message_id],
            "last": {"message_id": message.message_id, "replies": replies, "folio": folio}}
