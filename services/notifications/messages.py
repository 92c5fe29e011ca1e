"""What a citizen is told at each public step of a report: the email (subject, text, HTML) and the
SMS, in Spanish or English, rendered from templates/ (steps.<language>.txt holds the wording)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import LANGUAGES, RESOLUTIONS, TYPE_PREFIX, label

NOTIFIED = ("opened", "assigned", "crew_dispatched", "crew_en_route", "crew_arrived",
            "work_completed", "closed", "reopened")


@dataclass(frozen=True)
class Message:
    subject: str  # email subject line
    text: str  # plain-text body (email text part; WhatsApp)
    html: str  # HTML body (email), autoescaped
    sms: str  # GSM-7 and one segment where the links allow it; folio and links never cut


def render(event: CloudEvent, *, language: str = "es", status_url: str,
           unsubscribe_url: str | None = None, photo_url: str | None = None,
           timezone: str = "America/Mexico_City") -> Message | None:
    """The message of a published report event, or None for a step the citizen is not told of.

    `language` is the citizen's ("es", "en", "es-MX"…; anything else reads Spanish), `status_url`
    tracking's status page of the folio, `unsubscribe_url` the one-click opt-out (emails carry
    it), `photo_url` a photo of the finished work (work_completed only), `timezone` the city's:
    an ETA is shown in it. Raises ValueError for an event without a folio, or a status or
    opt-out address that is not http(s): settings, not data, make those."""
    step = event.type.removeprefix(TYPE_PREFIX)
    if not event.type.startswith(TYPE_PREFIX) or step not in NOTIFIED:
        return None
    language = _language(language)
    words = _env.get_template(f"steps.{language}.txt").module
    report = _report(step, event, language, ZoneInfo(timezone))
    title = label(step, language)
    context: dict[str, Any] = {
        "language": language, "words": words, "label": title,
        "subject": f"{title} · {report['folio']}",
        # The step's sentence is rendered here, as plain text: called inside email.html, a macro
        # of a .txt template would come back marked safe, its event data unescaped.
        "sentence": getattr(words, step)(report),
        "status_url": _link(status_url, "status_url"),
        "unsubscribe_url": unsubscribe_url and _link(unsubscribe_url, "unsubscribe_url"),
        "photo_url": _photo(photo_url) if step == "work_completed" else None,
        "link_label": None,
    }
    return Message(subject=context["subject"],
                   text=_env.get_template("email.txt").render(context),
                   html=_env.get_template("email.html").render(context),
                   sms=_sms(context, step, report))


def confirmation(folio: str, *, confirm_url: str, language: str = "es") -> Message:
    """What a follower's address gets first, and alone until it is confirmed: the folio, and
    the link that confirms it (nobody can have a stranger told of a report)."""
    language = _language(language)
    words: Any = _env.get_template(f"steps.{language}.txt").module
    report = {"folio": _clean(folio), "service": None, "eta": None, "resolution": None}
    if not report["folio"]:
        raise ValueError("a confirmation needs a folio")
    context: dict[str, Any] = {
        "language": language, "words": words, "label": words.confirm_link,
        "subject": f"{words.confirm_link} · {report['folio']}",
        "sentence": words.confirm(report),
        "status_url": _link(confirm_url, "confirm_url"),
        "unsubscribe_url": None, "photo_url": None, "link_label": words.confirm_link,
    }
    return Message(subject=context["subject"],
                   text=_env.get_template("email.txt").render(context),
                   html=_env.get_template("email.html").render(context),
                   sms=_sms(context, "confirm", report))


def _report(step: str, event: CloudEvent, language: str, zone: ZoneInfo) -> dict[str, Any]:
    """What the wording may say of the report, cleaned of control characters."""
    data = event.data if isinstance(event.data, dict) else {}
    folio = _clean(data.get("folio") or event.subject)
    if not folio:
        raise ValueError(f"{event.type} event {event.id} carries no folio")
    resolution = RESOLUTIONS.get(str(data.get("resolution")))
    return {
        "folio": folio,
        "service": _clean(data.get("service_name")) or None,
        "eta": _eta(data.get("eta"), event.time, zone) if step == "crew_en_route" else None,
        "resolution": getattr(resolution, language) if resolution else None,
    }


def _sms(context: dict[str, Any], step: str, report: dict[str, Any]) -> str:
    """The fullest SMS that fits one segment: it loses the photo if need be, then the service's
    name, then the words before the link. Links too long to fit take more segments: never cut."""
    words, template = context["words"], _env.get_template("sms.txt")
    photo, service = context["photo_url"], report["service"]
    sms = ""
    for photo_url, name, follow in ((photo, service, True), (None, service, True),
                                    (None, None, True), (None, None, False)):
        sentence = getattr(words, step)({**report, "service": name})
        sms = template.render({**context, "sentence": sentence, "photo_url": photo_url,
                               "follow": follow})
        if sms_segments(sms) == 1:
            break
    return sms


def _language(code: str) -> str:
    """"en", "EN", "en-US" -> "en"; what we do not write in reads Spanish, the city's language."""
    base = str(code or "").replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else LANGUAGES[0]


def _eta(value: Any, at: datetime, zone: ZoneInfo) -> dict[str, Any] | None:
    """The crew's expected arrival in city time, and how many days after the event it falls
    ("today", "tomorrow"). An ETA without a time zone is not shown: a wrong hour is worse."""
    try:
        eta = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if eta.tzinfo is None:
        return None
    local = eta.astimezone(zone)
    day = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone).date()
    return {"time": local.strftime("%H:%M"), "date": local.date(),
            "days": (local.date() - day).days}


def _link(url: str, name: str) -> str:
    link = _photo(url)
    if link is None:
        raise ValueError(f"{name} must be an http(s) address, not {url!r}")
    return link


def _photo(url: str | None) -> str | None:
    """An http(s) address, or None: a photo's address comes from event data, and a `javascript:`
    one must not become a link in anyone's mailbox."""
    link = _clean(url)
    parts = urlsplit(link)
    return link if parts.scheme in ("http", "https") and parts.netloc else None


_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _clean(value: Any) -> str:
    """One line of text: control and format characters (NUL, newlines, bidi overrides) become
    spaces, so event data cannot break a template or disguise what a message says."""
    if value is None:
        return ""
    text = "".join(" " if unicodedata.category(char) in _CONTROL else char for char in str(value))
    return " ".join(text.split())


# ---- SMS: the GSM 03.38 alphabet -------------------------------------------------------------

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # sent as escape + character: two septets each
_LOOKALIKES = {"‘": "'", "’": "'", "´": "'", "`": "'", "“": '"', "”": '"', "«": '"', "»": '"',
               "–": "-", "—": "-", "−": "-", "•": "-", "·": "-"}


def is_gsm7(text: str) -> bool:
    """Whether an SMS can go in the GSM-7 alphabet (160 characters a segment, not UCS-2's 70)."""
    return all(char in _GSM7_BASIC or char in _GSM7_EXTENDED for char in text)


def sms_segments(text: str) -> int:
    """How many SMS `text` takes: GSM-7 160 septets alone, 153 a part; else UCS-2, 70 / 67
    UTF-16 units. Parts split between characters, never inside an escape or a surrogate pair."""
    if is_gsm7(text):
        sizes, single, part = [2 if char in _GSM7_EXTENDED else 1 for char in text], 160, 153
    else:
        sizes, single, part = [2 if ord(char) > 0xFFFF else 1 for char in text], 70, 67
    if sum(sizes) <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return parts


def to_gsm7(text: str) -> str:
    """Spanish in GSM-7: "salió" -> "salio" (é, ñ, ü, ¿ and ¡ are in it and stay); what has no
    GSM-7 likeness becomes "?"."""
    return "".join(_gsm7_char(char) for char in str(text))


def _gsm7_char(char: str) -> str:
    if char in _GSM7_BASIC or char in _GSM7_EXTENDED:
        return char
    if char in _LOOKALIKES:
        return _LOOKALIKES[char]
    bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return bare if bare and is_gsm7(bare) else "?"


_env = Environment(
    loader=PackageLoader("services.notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["gsm7"] = to_gsm7
