"""The portal's report form: read it, check it in Spanish, and the messages it shows."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from shared.contracts.contacts import has_contact
from shared.contracts.fields import text_problem

from .. import schemas
from ..catalog import CatalogError, ServiceDefinition

REPORT = schemas.ReportSchema()
FOLLOW = schemas.FollowSchema()
FOLIO = re.compile(r"^[A-Z0-9]{1,12}-[0-9]{4}-[0-9]{1,12}$")
CONTACT_FIELDS = ("email", "phone", "first_name", "last_name")
# The form's fields after its questions, top to bottom: the order its error summary follows.
FORM_LAYOUT = ["lat", "long", "address", "location", "description", "photo", "first_name",
               "last_name", "email", "phone", "notify_by"]
IN_PROGRESS_WAIT_S, IN_PROGRESS_TRIES = 0.5, 20
# Spanish for what a field's marshmallow messages mean (they are in English, for the API).
FIELD_MESSAGES = {
    "description": "Describe el problema (hasta 4000 caracteres).",
    "location": "Indica dónde está: usa tu ubicación o escribe la dirección.",
    "lat": "Escribe la latitud y la longitud (números), o usa el botón «Usar mi ubicación».",
    "long": "La longitud es un número entre -180 y 180.",
    "address": "La dirección puede tener hasta 300 caracteres.",
    "email": "Escribe un correo válido, por ejemplo ana@ejemplo.com.",
    "phone": "Escribe un teléfono válido, por ejemplo +52 442 123 4567.",
    "first_name": "El nombre puede tener hasta 100 caracteres.",
    "last_name": "Los apellidos pueden tener hasta 100 caracteres.",
    "notify_by": "Elige cómo avisarte: correo, SMS o WhatsApp.",
    "photo": "La foto no es válida; vuelve a adjuntarla.",
}
# Values that may span lines (every other one is a single line), and what a text that is not
# clean gets instead of its field's message.
MULTILINE = ("description", "address")
TEXT_MESSAGES = {
    "characters": "Quita los caracteres invisibles o de control que tiene este dato.",
    "line": "Escribe este dato en una sola línea.",
}
ANSWER_MESSAGES = {
    "singlevaluelist": "Elige una de las opciones.",
    "multivaluelist": "Elige solo entre las opciones.",
    "number": "Escribe un número.",
    "datetime": "Escribe una fecha y hora válidas.",
    "string": "La respuesta es demasiado larga.",
    "text": "La respuesta es demasiado larga.",
}

def normal_folio(text: str) -> str:
    return text.strip().upper()


# ---- the report form: read, check in Spanish, build the submission ------------------------------


def read_report(form: MultiDict, definition: ServiceDefinition, zone: ZoneInfo) -> dict[str, Any]:
    """The form as ReportSchema's input (blank fields as None, dates in local time)."""

    def text(key: str) -> str | None:
        return (form.get(key) or "").strip() or None

    answers: dict[str, Any] = {}
    for question in definition.questions:
        key = f"attribute[{question.code}]"
        if question.datatype == "multivaluelist":
            answers[question.code] = [value for value in form.getlist(key) if value]
        elif question.datatype == "datetime" and text(key):
            answers[question.code] = with_zone(text(key) or "", zone)
        else:
            answers[question.code] = text(key) or ""
    contact: dict[str, Any] = {key: text(key) for key in CONTACT_FIELDS}
    contact["notify_by"] = [value for value in form.getlist("notify_by") if value]
    return {
        "service_code": definition.code, "description": text("description") or "",
        "location": {key: text(key) for key in ("lat", "long", "address")},
        # A photo kept from an earlier step is checked like any URL a client gives.
        "answers": answers, "media_urls": [text(key) for key in ("photo_url",) if text(key)],
        "contact": contact if any(contact.values()) else None,
    }


def with_zone(value: str, zone: ZoneInfo) -> str:
    """A `datetime-local` value (no offset) as the municipality's local time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # check_answers says what is wrong with it
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).isoformat()


def check_report(data: dict[str, Any], definition: ServiceDefinition
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """(loaded data, {form field: Spanish message}); every problem at once, nothing written."""
    answers = {f"attribute[{code}]": value for code, value in data["answers"].items()}
    errors = text_errors({"description": data["description"], **data["location"],
                          **(data["contact"] or {}), **answers})
    loaded: dict[str, Any] = {}
    try:
        loaded = REPORT.load(data)
    except ValidationError as error:
        for path in error_paths(error.messages):
            field = path[-1] if path[0] in ("location", "contact") else path[0]
            field = {"media_urls": "photo", "answers": f"attribute[{path[-1]}]"}.get(field, field)
            errors.setdefault(field, FIELD_MESSAGES.get(field, "Revisa este dato."))
    try:
        definition.check_answers(data["answers"])
    except CatalogError as error:
        questions = {f"attribute[{q.code}]": q for q in definition.questions}
        for field in error.errors:
            question = questions.get(field)
            if question is None:
                continue
            blank = data["answers"].get(question.code) in (None, "", [])
            errors[field] = ("Responde esta pregunta." if blank
                             else ANSWER_MESSAGES.get(question.datatype, "Revisa este dato."))
    contact = data["contact"] or {}
    notify_by = contact.get("notify_by") or []
    if "email" in notify_by and not contact.get("email"):
        errors.setdefault("email", "Para avisarte por correo, escribe tu correo.")
    if {"sms", "whatsapp"} & set(notify_by) and not contact.get("phone"):
        errors.setdefault("phone", "Para avisarte por SMS o WhatsApp, escribe tu teléfono.")
    return loaded, errors


def text_errors(values: dict[str, Any]) -> dict[str, str]:
    """{form field: Spanish message} for each value that is not clean text."""
    errors = {}
    for field, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue
            single_line = field not in MULTILINE and not field.startswith("attribute[")
            if text_problem(item):
                errors[field] = TEXT_MESSAGES["characters"]
            elif single_line and text_problem(item, single_line=True):
                errors[field] = TEXT_MESSAGES["line"]
    return errors


def error_paths(messages: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """marshmallow's nested messages as paths: {"location": {"lat": [...]}} -> [("location",
    "lat")] (list indexes are dropped: a field is one input here)."""
    if isinstance(messages, dict):
        paths = []
        for key, value in messages.items():
            paths += error_paths(value, prefix if isinstance(key, int) else (*prefix, str(key)))
        return paths
    return [prefix or ("_schema",)]


def follow_contact(form: MultiDict) -> tuple[dict[str, Any], dict[str, str]]:
    """The contact details of a follow form, or {field: Spanish message}."""
    contact: dict[str, Any] = {key: (form.get(key) or "").strip() or None
                               for key in CONTACT_FIELDS}
    contact["notify_by"] = [value for value in form.getlist("notify_by") if value]
    errors = text_errors(contact)
    try:
        contact = FOLLOW.load({"contact": contact})["contact"]
    except ValidationError as error:
        fields = {path[-1] for path in error_paths(error.messages)}
        return contact, {**{f: FIELD_MESSAGES.get(f, "Revisa este dato.") for f in fields},
                         **errors}
    if not has_contact(contact):
        return contact, {"email": "Escribe tu correo o tu teléfono para recibir avisos."}
    return contact, {}
