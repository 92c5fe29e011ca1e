"""The SMS and WhatsApp channels: a citizen's message POSTed as JSON to a provider's HTTP API with
requests (green under eventlet's patched sockets), in the "generic provider" format below. It has
the shape common SMS and WhatsApp APIs share, and deploy/local/fake_provider.py speaks it.

    POST {SMS_API_URL}/messages
    Authorization: Bearer {SMS_API_TOKEN}
    Idempotency-Key: {delivery.key}
    {"to": "+524421234567", "from": SMS_SENDER, "body": delivery.message.sms}

    POST {WHATSAPP_API_URL}/messages                     (the same headers, WHATSAPP_API_TOKEN)
    {"to": "+524421234567", "from": WHATSAPP_SENDER, "type": "template",
     "template": {"name": WHATSAPP_TEMPLATE_STEP, _CONFIRM or _DOCUMENT, by delivery.purpose,
                  "language": "es" or "en", "parameters": [delivery.message.sms]},  (one line:
                  template parameters take no line breaks)
     "document": {"filename": "...", "content_type": "...", "data": "<base64>"}}   (attachment)

The provider answers 2xx {"id": "<its message id>"} when it takes a message, and 409 {"id": ...}
when it already took one under that Idempotency-Key: both are "sent", so a resend after a crash is
never a second message on the citizen's phone. 408, 425, 429, 5xx, a refused token (401, 403: our
settings, an operator fixes them), no connection and no answer in time are "retry"; any other 4xx
is "rejected", with the provider's error text. A number that cannot be one is rejected unsent."""

from __future__ import annotations

import base64
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from services.notifications.channels import Delivery, Outcome, Purpose, rejected, retry, sent
from services.notifications.mail import _loopback
from shared.contracts.events import LANGUAGES

TEMPLATES: dict[Purpose, str] = {"step": "expediente_paso", "confirm": "expediente_confirmacion",
                                 "document": "expediente_documento"}
DETAIL_LENGTH = 300  # of a provider's error text in an outcome: enough to read, not a page
# Answers the provider may turn into a "sent" later: busy, throttled, down, or our token refused.
_RETRIED = {401, 403, 408, 425, 429}
# No answer, or half of one; anything else requests raises (a bad header) is a bug of ours.
_UNANSWERED = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
               requests.exceptions.ContentDecodingError, requests.exceptions.RetryError)


class BadPhone(ValueError):
    """A number no provider will ever deliver to: the delivery is rejected, not retried."""


class _ProviderChannel(ABC):
    """One provider's API: where it is, our token and sender, and what its answers mean."""

    name: str
    setting: str  # the prefix of the channel's configuration keys

    def __init__(self, url: str, token: str, sender: str, *, timeout: float | str = 10,
                 default_country: str = "52", session: requests.Session | None = None) -> None:
        key = self.setting
        self.url = _api_url(url, f"{key}_API_URL")
        self.token = str(token or "").strip()
        if not re.fullmatch(r"[\x21-\x7e]+", self.token):  # never echoed: it is a secret
            raise ValueError(f"{key}_API_TOKEN is required, as one word of printable ASCII")
        self.sender = str(sender or "").strip()
        if not self.sender.isprintable() or not self.sender:
            raise ValueError(f"{key}_SENDER is required: the number or name messages come from")
        self.timeout = _seconds(timeout, f"{key}_TIMEOUT")
        if not re.fullmatch(r"[1-9][0-9]{0,2}", str(default_country)):
            raise ValueError(f"PHONE_DEFAULT_COUNTRY must be a country calling code such as 52, "
                             f"not {default_country!r}")
        self.default_country = str(default_country)
        # One session, so that its pooled connections are reused between messages.
        self.session = session or requests.Session()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The channel the service's configuration names (environment variables through
        config.yaml). Raises ValueError, naming the key, for a setting that cannot work."""
        return cls(**cls._settings(config))

    @classmethod
    def _settings(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        key = cls.setting
        return {"url": str(config.get(f"{key}_API_URL") or ""),
                "token": str(config.get(f"{key}_API_TOKEN") or ""),
                "sender": str(config.get(f"{key}_SENDER") or ""),
                "timeout": config.get(f"{key}_TIMEOUT") or 10,
                "default_country": str(config.get("PHONE_DEFAULT_COUNTRY") or "52").lstrip("+")}

    @abstractmethod
    def payload(self, delivery: Delivery, to: str) -> dict[str, Any]:
        """The JSON body the provider takes for `delivery` to the number `to` (E.164)."""

    def send(self, delivery: Delivery) -> Outcome:
        """POST the message once and tell what the provider made of it (module docstring)."""
        try:
            to = phone(delivery.address, self.default_country)
        except BadPhone as error:
            return rejected(str(error))
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": delivery.key,
                   "Accept": "application/json"}
        try:
            response = self.session.post(f"{self.url}/messages", json=self.payload(delivery, to),
                                         headers=headers, timeout=self.timeout,
                                         allow_redirects=False)
        except _UNANSWERED as error:
            return self._told(retry(f"{type(error).__name__}: {error}"))
        with response:
            return self._told(self._answer(response))

    def _answer(self, response: requests.Response) -> Outcome:
        code, host = response.status_code, urlsplit(self.url).netloc
        if 200 <= code < 300 or code == 409:
            provider_id = _json(response).get("id")
            if provider_id not in (None, ""):
                taken = "taken" if code != 409 else "already taken under this Idempotency-Key"
                return sent(str(provider_id)[:200], f"{code} {taken} by {host}")
            if code != 409:
                return sent(None, f"{code} taken by {host}, which gave no id")
            # It has the key but names no message: the first attempt may still be in flight.
            return retry(f"409 from {host} without an id")
        detail = f"{code} {_error_text(response)}"
        if code < 400:
            return retry(f"{detail} (redirected to {response.headers.get('Location')}: "
                         f"{self.setting}_API_URL must name the API itself)")
        if code in _RETRIED or code >= 500:
            wait = response.headers.get("Retry-After")
            return retry(f"{detail} (Retry-After: {wait})" if wait else detail)
        return rejected(detail)

    def _told(self, outcome: Outcome) -> Outcome:
        """The outcome with a detail fit for the delivery log: one line, not too long, and never
        our token, whatever the provider or an error message echoed."""
        detail = _one_line(outcome.detail).replace(self.token, "[token]")
        return outcome._replace(detail=detail[:DETAIL_LENGTH])


class SmsChannel(_ProviderChannel):
    """SMS through a provider's API. Configuration: SMS_API_URL (the API's base address),
    SMS_API_TOKEN, SMS_SENDER (a number or an approved sender name), SMS_TIMEOUT (seconds,
    10), PHONE_DEFAULT_COUNTRY (calling code of ten-digit national numbers, 52)."""

    name = "sms"
    setting = "SMS"

    def payload(self, delivery: Delivery, to: str) -> dict[str, Any]:
        return {"to": to, "from": self.sender, "body": delivery.message.sms}


class WhatsAppChannel(_ProviderChannel):
    """WhatsApp through a provider's API. A business writes first only with a template Meta
    approved, so the message goes as the one parameter of the template of its purpose.
    Configuration: WHATSAPP_API_URL, WHATSAPP_API_TOKEN, WHATSAPP_SENDER, WHATSAPP_TIMEOUT,
    WHATSAPP_TEMPLATE_STEP, WHATSAPP_TEMPLATE_CONFIRM, WHATSAPP_TEMPLATE_DOCUMENT (TEMPLATES),
    PHONE_DEFAULT_COUNTRY."""

    name = "whatsapp"
    setting = "WHATSAPP"

    def __init__(self, url: str, token: str, sender: str, *,
                 templates: Mapping[Purpose, str] | None = None, **options: Any) -> None:
        super().__init__(url, token, sender, **options)
        self.templates = {**TEMPLATES, **(templates or {})}

    @classmethod
    def _settings(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        templates = {purpose: str(config.get(f"WHATSAPP_TEMPLATE_{purpose.upper()}") or name)
                     for purpose, name in TEMPLATES.items()}
        return {**super()._settings(config), "templates": templates}

    def payload(self, delivery: Delivery, to: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "to": to, "from": self.sender, "type": "template",
            "template": {"name": self.templates[delivery.purpose],
                         "language": _language(delivery.language),
                         "parameters": [delivery.message.sms]}}
        if delivery.attachment:
            body["document"] = {
                "filename": delivery.attachment.filename,
                "content_type": delivery.attachment.content_type,
                "data": base64.b64encode(delivery.attachment.data).decode("ascii")}
        return body


def phone(text: str, default_country: str = "52") -> str:
    """A number as a citizen typed it, in E.164: "+52 442 123 4567", "442-123-4567",
    "(442) 123 45 67" and "0052 442 123 4567" are all "+524421234567". Ten digits without a
    country code are a national number of `default_country`. Raises BadPhone for anything that
    cannot be a number (letters, an extension, two numbers, too few or too many digits)."""
    typed = unicodedata.normalize("NFKC", str(text or "")).strip()  # full-width digits, NBSP
    digits = re.sub(r"[^0-9]", "", typed)
    if not _TYPED.fullmatch(typed):
        raise BadPhone(f"not a phone number: {text!r}")
    if typed.startswith("+"):
        pass
    elif digits.startswith("00"):  # the international prefix dialled from Mexico and Europe
        digits = digits[2:]
    elif len(digits) == 10:
        digits = default_country + digits
    else:
        raise BadPhone(f"not a phone number with its country code or of ten digits: {text!r}")
    if digits.startswith("521") and len(digits) == 13:
        digits = "52" + digits[3:]  # the "1" Mexican mobiles took before 2019: no longer dialled
    length = next((size for code, size in _LENGTHS.items() if digits.startswith(code)), None)
    if not _E164.fullmatch(digits) or length not in (None, len(digits)):
        raise BadPhone(f"not a phone number any provider can reach: {text!r}")
    return f"+{digits}"


_TYPED = re.compile(r"\+?[0-9 ().\-]+")  # digits and what people write between them
_E164 = re.compile(r"[1-9][0-9]{6,14}")
_LENGTHS = {"52": 12, "1": 11}  # Mexico and North America: ten digits after the country code
_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _api_url(url: str, name: str) -> str:
    """The provider's base address: http(s), no credentials in it (the token travels in a
    header), and http only to this machine, where no one can read the token on the way."""
    url = str(url or "").strip().rstrip("/")
    if not url:
        raise ValueError(f"{name} is required: the provider's API address, "
                         "e.g. https://api.provider.example/v1")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) address, not {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{name} must be a plain address, without credentials, query or fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{name} over http would send the token in the clear to "
                         f"{parts.hostname}: use https")
    return url


def _seconds(value: float | str, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
    return seconds


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _error_text(response: requests.Response) -> str:
    """What the provider said was wrong: {"error": "..."}, {"error": {"message": "..."}},
    {"message": "..."} or {"detail": "..."}, else its answer as text."""
    answer = _json(response)
    error = answer.get("error")
    for said in (error.get("message") if isinstance(error, dict) else error,
                 answer.get("message"), answer.get("detail")):
        if isinstance(said, str) and said.strip():
            return said
    return response.text[:DETAIL_LENGTH] or response.reason or ""


def _one_line(text: str) -> str:
    clean = "".join(" " if unicodedata.category(char) in _CONTROL else char for char in text)
    return " ".join(clean.split())


def _language(code: str) -> str:
    """"en", "en-US" -> "en"; a language we have no templates in reads Spanish."""
    base = str(code or "").replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else LANGUAGES[0]
