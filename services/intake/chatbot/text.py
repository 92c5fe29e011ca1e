"""Reading what a citizen types to the chatbot: words without accents or case, categories by name
or keyword, list choices, numbers, dates, coordinates, addresses, yes/no and the global commands.
Pure functions; the conversation itself is in chatbot.py."""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from datetime import datetime
from typing import Any

from ..catalog import Question, ServiceDefinition

STOPWORDS = frozenset({
    "a", "al", "con", "de", "del", "el", "en", "es", "esta", "este", "hay", "la", "las", "le",
    "lo", "los", "me", "mi", "mis", "muy", "o", "para", "pero", "por", "que", "se", "su", "sus",
    "un", "una", "unos", "y", "ya", "publico", "publica", "espacio", "via"})
COMMANDS = {
    "cancel": {"cancelar", "cancela", "salir", "terminar", "adios"},
    "restart": {"reiniciar", "empezar", "empezar de nuevo", "volver a empezar", "inicio", "menu",
                "nuevo reporte"},
    "help": {"ayuda", "help", "no entiendo", "como funciona"},
    "back": {"atras", "regresar", "volver", "anterior", "paso anterior"},
}
GREETINGS = frozenset({"hola", "buenas", "buenos", "buen", "hey", "holi"})
YES = frozenset({"si", "s", "sip", "simon", "claro", "confirmo", "confirmar", "correcto", "ok",
                 "okay", "dale", "de acuerdo", "va", "yes", "enviar", "envialo", "esta bien"})
NO = frozenset({"no", "n", "nel", "nop", "negativo", "no gracias", "todavia no"})
SKIP = frozenset({"no", "n", "omitir", "omite", "saltar", "sin foto", "no tengo", "no tengo foto",
                  "ninguna", "no gracias", "despues"})
NUMBER_WORDS = {"uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
                "siete": 7, "ocho": 8, "nueve": 9, "diez": 10}
NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
# "20.5931, -100.392" (also inside a maps link) or, with decimal commas, "20,5931 -100,392".
POINT = re.compile(r"(-?\d{1,3}\.\d+)\s*[,;/ ]\s*(-?\d{1,3}\.\d+)")
POINT_COMMAS = re.compile(r"^\s*(-?\d{1,3},\d+)\s*[;/ ]\s*(-?\d{1,3},\d+)\s*$")
URL = re.compile(r"https?://\S+", re.IGNORECASE)
MAX_ADDRESS = 300


def normalise(text: str) -> str:
    """Lower case, no accents, letters and digits only: "¡Sí, Luminaria!" -> "si luminaria"."""
    plain = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def command(text: str) -> str | None:
    """`cancel`, `restart`, `help` or `back` when the whole message is one, else None."""
    said = normalise(text)
    for name, phrases in COMMANDS.items():
        if said in phrases:
            return name
    words = said.split()
    if words and words[0] in GREETINGS and len(words) <= 3:
        return "restart"
    return None


def is_yes(text: str) -> bool:
    said = normalise(text)
    return said in YES or (said.split()[:1] == ["si"] and len(said.split()) <= 4)


def is_no(text: str) -> bool:
    return normalise(text) in NO


def is_skip(text: str) -> bool:
    return normalise(text) in SKIP


def menu_number(text: str) -> int | None:
    """A choice by number: "2", "2.", "el 2", "dos"."""
    words = normalise(text).split()
    if words[:1] in (["el"], ["la"], ["opcion"], ["numero"]):
        words = words[1:]
    if len(words) != 1:
        return None
    return int(words[0]) if words[0].isdigit() else NUMBER_WORDS.get(words[0])


def _same_word(word: str, term: str) -> bool:
    """Equal, a plural, one family ("basurero", "basura") or a slip of the keyboard."""
    if word == term or word in (term + "s", term + "es"):
        return True
    if len(term) < 5 or len(word) < 5:
        return False
    shared = len(os.path.commonprefix([word, term]))
    return (shared >= 0.8 * min(len(word), len(term))
            or difflib.SequenceMatcher(None, word, term).ratio() >= 0.85)


def _terms(service: ServiceDefinition) -> dict[str, int]:
    """What names a service, with a weight: a keyword counts 2 a word, a word of its name 1."""
    terms = {word: 1 for word in normalise(service.name).split()
             if word not in STOPWORDS and len(word) > 2}
    for keyword in service.keywords:
        term = normalise(keyword)
        terms[term] = max(terms.get(term, 0), 2 * len(term.split()))
    return terms


def rank_services(text: str, services: list[ServiceDefinition]) -> list[ServiceDefinition]:
    """The service the text names ([one]), the tied candidates (best first, at most 5), or []."""
    said = normalise(text)
    if not said:
        return []
    for service in services:
        if said in (normalise(service.name), normalise(service.code)):
            return [service]
    words = [w for w in said.split() if w not in STOPWORDS]
    scored = []
    for service in services:
        score = sum(weight for term, weight in _terms(service).items()
                    if (f" {term} " in f" {said} " if " " in term
                        else any(_same_word(w, term) for w in words)))
        if score:
            scored.append((score, service))
    scored.sort(key=lambda pair: -pair[0])
    if len(scored) == 1 or (len(scored) > 1 and scored[0][0] > scored[1][0]):
        return [scored[0][1]]
    return [service for _, service in scored[:5]]


def choose(text: str, values: tuple[tuple[str, str], ...]) -> str | None:
    """The key of the value the text names: by number, key, name or the start of the name."""
    said = normalise(text)
    number = menu_number(text)
    if number is not None:
        return values[number - 1][0] if 1 <= number <= len(values) else None
    if not said:
        return None
    for key, name in values:
        if said in (normalise(key), normalise(name)):
            return key
    starts = [key for key, name in values if normalise(name).startswith(said) and len(said) > 2]
    if len(starts) == 1:
        return starts[0]
    inside = [key for key, _ in values if f" {normalise(key)} " in f" {said} "]
    return inside[0] if len(inside) == 1 else None


def choose_many(text: str, values: tuple[tuple[str, str], ...]) -> tuple[list[str], list[str]]:
    """(keys named, parts not understood) for "1, 3", "tapado y mal olor", "1 3"."""
    parts = [p.strip() for p in re.split(r"[,;]|\s+y\s+|\s+e\s+", text or "") if p.strip()]
    if len(parts) == 1 and all(w.isdigit() for w in parts[0].split()):
        parts = parts[0].split()
    keys: list[str] = []
    unknown: list[str] = []
    for part in parts:
        key = choose(part, values)
        if key is None:
            unknown.append(part)
        elif key not in keys:
            keys.append(key)
    return keys, unknown


def number(text: str) -> float | int | None:
    """The first number in the text, decimal comma or point: "2,5 m" -> 2.5; "tres" -> 3."""
    found = NUMBER.search(text or "")
    if found is None:
        words = normalise(text).split()
        return NUMBER_WORDS.get(words[0]) if len(words) == 1 else None
    value = float(found.group().replace(",", "."))
    return int(value) if value.is_integer() else value


def when(text: str) -> str | None:
    """A date (and time) as ISO 8601: "22/11/2026", "22/11/2026 18:30" or "2026-11-22"."""
    said = (text or "").strip()
    for pattern in ("%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(said, pattern).isoformat()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(said).isoformat()
    except ValueError:
        return None


def answer(question: Question, text: str) -> Any:
    """The citizen's answer to a catalog question as a clean value; ValueError says, in Spanish,
    what we expected."""
    kind = question.datatype
    if kind == "singlevaluelist":
        key = choose(text, question.values)
        if key is None:
            raise ValueError("Elige una de las opciones (el número o el nombre).")
        return key
    if kind == "multivaluelist":
        keys, unknown = choose_many(text, question.values)
        if unknown or not keys:
            what = f" No reconocí: {', '.join(unknown)}." if unknown else ""
            raise ValueError(f"Elige una o varias opciones, separadas por comas.{what}")
        return keys
    if kind == "number":
        value = number(text)
        if value is None:
            raise ValueError("Responde con un número, por ejemplo 3 o 2,5.")
        return value
    if kind == "datetime":
        moment = when(text)
        if moment is None:
            raise ValueError("Escribe la fecha así: 22/11/2026 (o 22/11/2026 18:30).")
        return moment
    said = (text or "").strip()
    if not normalise(said):
        raise ValueError("Escribe tu respuesta.")
    return said[:500]


def point(text: str) -> tuple[float, float] | None:
    """Typed coordinates (latitude, longitude), also inside a maps link; None if there are none."""
    found = POINT.search(text or "") or POINT_COMMAS.search(text or "")
    if found is None:
        return None
    lat, long = (float(g.replace(",", ".")) for g in found.groups())
    return (lat, long) if -90 <= lat <= 90 and -180 <= long <= 180 else None


def address(text: str) -> str | None:
    """The text as a street address if it reads like one: some words with letters, not too long."""
    said = " ".join((text or "").split())
    words = normalise(said).split()
    letters = sum(len(w) for w in words if not w.isdigit())
    if len(words) < 2 or letters < 6 or len(said) > MAX_ADDRESS or URL.search(said):
        return None
    if normalise(said) in YES | NO | SKIP:
        return None
    return said


def url(text: str) -> str | None:
    found = URL.search(text or "")
    return found.group() if found else None


# ---- what we write back --------------------------------------------------------------------

WELCOME = "¡Hola! Soy el asistente de reportes ciudadanos del municipio."
HELP = ("Te ayudo a reportar un problema en la vía pública en unos pasos: qué pasa, dónde, "
        "una breve descripción y, si quieres, una foto. Al final recibes un folio para darle "
        "seguimiento. Puedes escribir 'atrás' para corregir el paso anterior, 'reiniciar' para "
        "empezar de nuevo o 'cancelar' para salir.")
ASK_CATEGORY = "¿Qué quieres reportar? Responde con el número o escríbelo con tus palabras:"
ASK_LOCATION = ("¿Dónde está el problema? Comparte tu ubicación, escribe las coordenadas (por "
                "ejemplo 20.5931, -100.3920) o la dirección con calle, número y colonia.")
ASK_DESCRIPTION = "Describe el problema en pocas palabras (qué pasa y alguna referencia del lugar)."
ASK_PHOTO = "Si puedes, envía una foto del problema. Si no, responde 'omitir'."
CANCELLED = "Listo, cancelé el reporte. Cuando quieras, escribe 'hola' para empezar otro."
START = "Escribe 'hola' para empezar un reporte."
EXPIRED = ("Tu reporte anterior quedó a medias por mucho tiempo y lo descarté; empecemos de "
           "nuevo.")
ANOTHER = "Si quieres reportar otra cosa, escribe 'hola'."
NOT_SENT = ("No lo envié. Escribe 'atrás' para corregir el último dato, 'reiniciar' para empezar "
            "de nuevo o 'cancelar' para salir.")
FAILED = {
    "pending": "Estoy registrando tu reporte; espera un momento y responde 'sí' otra vez.",
    "invalid": "Algo de tu reporte ya no es válido (quizá cambió el catálogo). Escribe "
               "'reiniciar' para empezar de nuevo.",
    "unavailable": "No pude registrar tu reporte en este momento. Responde 'sí' en unos minutos "
                   "para intentarlo de nuevo; no se duplicará.",
}


def menu(title: str, services: list[ServiceDefinition]) -> str:
    return "\n".join([title] + [f"{i}. {s.name}" for i, s in enumerate(services, 1)])


def ask(question: Question) -> str:
    """A catalog question as the chatbot asks it, list choices numbered."""
    if question.datatype in ("singlevaluelist", "multivaluelist"):
        options = "\n".join(f"{i}. {name}" for i, (_, name) in enumerate(question.values, 1))
        how = ("Puedes elegir varias, separadas por comas (por ejemplo 1, 3)."
               if question.datatype == "multivaluelist" else "Responde con el número.")
        return f"{question.description}\n{options}\n{how}"
    if question.datatype == "number":
        return f"{question.description} (responde con un número)"
    if question.datatype == "datetime":
        return f"{question.description} (por ejemplo 22/11/2026 18:30)"
    return question.description


def summary(service: ServiceDefinition, asked: list[Question], report: dict[str, Any]) -> str:
    """The report as the citizen is asked to confirm it."""
    location = report["location"] or {}
    where = location.get("address") or f"{location['lat']:.5f}, {location['long']:.5f}"
    lines = ["Revisa tu reporte:", f"• Tipo: {service.name}", f"• Ubicación: {where}"]
    for question in asked:
        value = report["answers"].get(question.code)
        names = dict(question.values)
        shown = (", ".join(names.get(v, str(v)) for v in value) if isinstance(value, list)
                 else names.get(value, str(value)))
        lines.append(f"• {question.description} {shown}")
    lines.append(f"• Descripción: {report['description']}")
    lines.append(f"• Foto: {'sí' if report['media_urls'] else 'no'}")
    return "\n".join(lines + ["¿Confirmas? (sí/no)"])
