"""The SMS and WhatsApp a citizen receives, as the channels hand them to a provider (no network: a
requests adapter stands in for the provider's API). Each goes as the generic provider's JSON with
our token and the delivery's key; the WhatsApp template is the one of the delivery's purpose, a
statement travels as a base64 document; the number the citizen typed goes in E.164, and one that
cannot be a number is rejected unsent. Then what each answer of the provider becomes — "sent",
"retry" or "rejected" — and, whatever it said, no outcome ever carries our token."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from services.notifications.channels import Attachment, Delivery
from services.notifications.messages import Message
from services.notifications.phones import BadPhone, SmsChannel, WhatsAppChannel, phone

TOKEN = "tok_live_5f2b9c0e7d1a"
SMS_CONFIG = {"SMS_API_URL": "https://sms.provider.example/v1/", "SMS_API_TOKEN": TOKEN,
              "SMS_SENDER": "LERDO"}
WHATSAPP_CONFIG = {"WHATSAPP_API_URL": "https://wa.provider.example/v2",
                   "WHATSAPP_API_TOKEN": TOKEN, "WHATSAPP_SENDER": "+528711234567",
                   "WHATSAPP_TIMEOUT": "4.5"}
MESSAGE = Message(
    subject="Cuadrilla en camino · QRO-2026-000123",
    text="La cuadrilla ya salió hacia el bache de la calle Ñandú; llega a las 10:25.",
    html="<p>La cuadrilla ya salió.</p>",
    sms="La cuadrilla ya salio hacia el bache. Siga su reporte: https://s.example/QRO-2026-000123",
)
STATEMENT = Attachment("estado-de-cuenta-2026-11.pdf", "application/pdf",
                       b"%PDF-1.7\n\x00\xff\xfe binary statement\n%%EOF")


class FakeProvider(BaseAdapter):
    """A provider's API that answers what it is told to, in turn, and keeps what it was sent.
    An answer is (status, JSON or text body, headers), or an exception to raise instead."""

    def __init__(self, *answers: Any) -> None:
        super().__init__()
        self.answers = list(answers) or [(201, {"id": "msg-1"}, {})]
        self.sent: list[requests.PreparedRequest] = []
        self.options: list[dict[str, Any]] = []

    def send(self, request, **options):
        self.sent.append(request)
        self.options.append(options)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, body, headers = answer
        response = requests.Response()
        response.status_code, response.request, response.url = status, request, request.url
        response.reason = "Reason"
        response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        response.headers.update(headers)
        return response

    def close(self):
        pass

    def body(self, index: int = -1) -> dict[str, Any]:
        return json.loads(self.sent[index].body)


def sms(*answers: Any, **config: Any) -> tuple[SmsChannel, FakeProvider]:
    channel = SmsChannel.from_config({**SMS_CONFIG, **config})
    provider = FakeProvider(*answers)
    channel.session.mount("https://", provider)
    return channel, provider


def whatsapp(*answers: Any, **config: Any) -> tuple[WhatsAppChannel, FakeProvider]:
    channel = WhatsAppChannel.from_config({**WHATSAPP_CONFIG, **config})
    provider = FakeProvider(*answers)
    channel.session.mount("https://", provider)
    return channel, provider


def delivery(to: str = "+52 442 123 4567", key: str = "ev-41:sub-7:sms", **more: Any) -> Delivery:
    return Delivery(key=key, address=to, message=MESSAGE, **more)


# ---- what goes to the provider -----------------------------------------------------------------

def test_ana_s_sms_goes_as_json_with_our_token_and_the_delivery_key():
    channel, provider = sms()
    outcome = channel.send(delivery())
    assert (outcome.status, outcome.provider_id) == ("sent", "msg-1")
    [request] = provider.sent
    assert (request.method, request.url) == ("POST", "https://sms.provider.example/v1/messages")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "ev-41:sub-7:sms"
    assert request.headers["Content-Type"] == "application/json"
    assert provider.body() == {"to": "+524421234567", "from": "LERDO", "body": MESSAGE.sms}
    assert provider.options[0]["timeout"] == 10  # SMS_TIMEOUT's default: never wait forever


def test_a_resend_of_one_delivery_carries_the_same_key_and_another_delivery_another():
    channel, provider = sms()
    channel.send(delivery())
    channel.send(delivery())
    channel.send(delivery(key="ev-42:sub-7:sms"))
    assert [r.headers["Idempotency-Key"] for r in provider.sent] == [
        "ev-41:sub-7:sms", "ev-41:sub-7:sms", "ev-42:sub-7:sms"]


@pytest.mark.parametrize(("purpose", "template"), [
    ("step", "lerdo_paso_v3"), ("confirm", "lerdo_confirma"), ("document", "lerdo_recibo")])
def test_the_whatsapp_template_is_the_one_of_the_delivery_s_purpose(purpose, template):
    channel, provider = whatsapp(WHATSAPP_TEMPLATE_STEP="lerdo_paso_v3",
                                 WHATSAPP_TEMPLATE_CONFIRM="lerdo_confirma",
                                 WHATSAPP_TEMPLATE_DOCUMENT="lerdo_recibo")
    assert channel.send(delivery(purpose=purpose)).status == "sent"
    assert provider.sent[0].url == "https://wa.provider.example/v2/messages"
    assert provider.body() == {
        "to": "+524421234567", "from": "+528711234567", "type": "template",
        "template": {"name": template, "language": "es", "parameters": [MESSAGE.sms]}}
    assert provider.options[0]["timeout"] == 4.5


def test_without_template_settings_the_expediente_templates_are_used():
    channel, provider = whatsapp()
    for purpose in ("step", "confirm", "document"):
        channel.send(delivery(purpose=purpose))
    assert [provider.body(i)["template"]["name"] for i in range(3)] == [
        "expediente_paso", "expediente_confirmacion", "expediente_documento"]


@pytest.mark.parametrize(("language", "sent_as"), [
    ("en", "en"), ("en-US", "en"), ("ES_mx", "es"), ("fr", "es"), ("", "es")])
def test_the_template_is_asked_for_in_the_citizen_s_language_or_spanish(language, sent_as):
    channel, provider = whatsapp()
    channel.send(delivery(language=language))
    assert provider.body()["template"]["language"] == sent_as


def test_a_statement_travels_as_a_base64_document_and_a_step_carries_none():
    channel, provider = whatsapp()
    channel.send(delivery(purpose="document", attachment=STATEMENT))
    channel.send(delivery())
    document = provider.body(0)["document"]
    assert (document["filename"], document["content_type"]) == (
        "estado-de-cuenta-2026-11.pdf", "application/pdf")
    assert base64.b64decode(document["data"], validate=True) == STATEMENT.data
    assert "document" not in provider.body(1)


# ---- the number the citizen typed --------------------------------------------------------------

@pytest.mark.parametrize("typed", [
    "+52 442 123 4567", "442-123-4567", "(442) 123 45 67", "442.123.4567", "4421234567",
    "0052 442 123 4567", "+52 1 442 123 4567", " +524421234567 ", "４４２ １２３ ４５６７",
    "442\u00a0123\u00a04567"])
def test_what_a_citizen_typed_becomes_one_e164_number(typed):
    assert phone(typed) == "+524421234567"
    channel, provider = sms()
    channel.send(delivery(to=typed))
    assert provider.body()["to"] == "+524421234567"


def test_numbers_of_other_countries_keep_their_code_and_ten_digits_take_the_configured_one():
    assert phone("+34 612 34 56 78") == "+34612345678"
    assert phone("+1 (512) 555-0142") == "+15125550142"
    assert phone("512 555 0142", default_country="1") == "+15125550142"
    channel, provider = sms(PHONE_DEFAULT_COUNTRY="+1")
    channel.send(delivery(to="512-555-0142"))
    assert provider.body()["to"] == "+15125550142"


@pytest.mark.parametrize("typed", [
    "", "   ", "sin teléfono", "442 123 456", "442 123 45678", "+52 442 123 456",
    "+1 512 555 01", "123 4567", "+0 442 123 4567", "+52 442 123 4567 ext. 12",
    "442 123 4567 / 442 765 4321", "442+1234567", "+1234567890123456", "٤٤٢١٢٣٤٥٦٧"])
def test_what_cannot_be_a_number_is_rejected_without_calling_the_provider(typed):
    with pytest.raises(BadPhone):
        phone(typed)
    for channel, provider in (sms(), whatsapp()):
        outcome = channel.send(delivery(to=typed))
        assert (outcome.status, outcome.final, provider.sent) == ("rejected", True, [])


# ---- what each answer of the provider becomes --------------------------------------------------

@pytest.mark.parametrize(("status", "body", "provider_id"), [
    (201, {"id": "msg-7"}, "msg-7"), (200, {"id": 42, "status": "queued"}, "42"),
    (202, {"sid": "SM123"}, None), (202, "", None),
    (409, {"id": "msg-7", "error": "duplicate Idempotency-Key"}, "msg-7")])
def test_a_message_the_provider_took_now_or_before_is_sent(status, body, provider_id):
    channel, _ = sms((status, body, {}))
    outcome = channel.send(delivery())
    assert (outcome.status, outcome.provider_id, outcome.final) == ("sent", provider_id, True)
    assert outcome.detail.startswith(str(status))


@pytest.mark.parametrize(("status", "body", "headers", "said"), [
    (500, {"error": "internal error"}, {}, "500 internal error"),
    (502, "<html>Bad Gateway</html>", {}, "502 <html>Bad Gateway</html>"),
    (503, {"message": "maintenance"}, {"Retry-After": "120"}, "503 maintenance (Retry-After: 120)"),
    (504, "", {}, "504 Reason"),
    (429, {"error": {"message": "rate limit"}}, {"Retry-After": "30"},
     "429 rate limit (Retry-After: 30)"),
    (408, {"error": "request timeout"}, {}, "408 request timeout"),
    (425, {"detail": "too early"}, {}, "425 too early"),
    (401, {"error": "invalid token"}, {}, "401 invalid token"),
    (403, {"error": "sender not allowed for this account"}, {}, "403 sender not allowed"),
    (409, {"error": "a request with this key is in progress"}, {}, "409 from"),
    (302, "", {"Location": "https://login.provider.example/"},
     "302 Reason (redirected to https://login.provider.example/"),
])
def test_what_the_provider_may_take_later_is_retried(status, body, headers, said):
    channel, _ = sms((status, body, headers))
    outcome = channel.send(delivery())
    assert (outcome.status, outcome.provider_id, outcome.final) == ("retry", None, False)
    assert outcome.detail.startswith(said)


@pytest.mark.parametrize("error", [
    requests.ConnectionError("Connection refused"), requests.ConnectTimeout("connect timed out"),
    requests.ReadTimeout("read timed out"), requests.exceptions.SSLError("certificate verify"),
    requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")])
def test_no_answer_or_half_of_one_is_retried(error):
    channel, _ = sms(error)
    outcome = channel.send(delivery())
    assert (outcome.status, outcome.final) == ("retry", False)
    assert outcome.detail.startswith(type(error).__name__)


@pytest.mark.parametrize(("status", "body", "said"), [
    (400, {"error": "'to' is not a mobile number"}, "400 'to' is not a mobile number"),
    (404, {"error": {"code": 21211, "message": "unknown number"}}, "404 unknown number"),
    (422, {"message": "template expediente_paso is not approved"}, "422 template"),
    (410, "number unsubscribed (STOP)", "410 number unsubscribed (STOP)"),
])
def test_what_the_provider_will_never_take_is_rejected_with_its_words(status, body, said):
    channel, _ = whatsapp((status, body, {}))
    outcome = channel.send(delivery())
    assert (outcome.status, outcome.provider_id, outcome.final) == ("rejected", None, True)
    assert outcome.detail.startswith(said)


def test_a_long_error_from_the_provider_is_cut_and_kept_on_one_line():
    channel, _ = sms((400, {"error": "invalid\r\nbody " + "x" * 5000}, {}))
    outcome = channel.send(delivery())
    assert outcome.status == "rejected"
    assert outcome.detail.startswith("400 invalid body xxx")
    assert 250 <= len(outcome.detail) <= 300 and "\n" not in outcome.detail


@pytest.mark.parametrize("answer", [
    (401, {"error": f"token {TOKEN} is revoked"}, {}),
    (400, f"Authorization: Bearer {TOKEN} is not valid for sender LERDO", {}),
    (500, {"error": {"message": f"trace: headers={{'Authorization': 'Bearer {TOKEN}'}}"}}, {}),
    requests.ConnectionError(f"proxy refused request with Authorization: Bearer {TOKEN}"),
])
def test_no_outcome_carries_our_token_whatever_the_provider_echoed(answer):
    for channel, _ in (sms(answer), whatsapp(answer)):
        outcome = channel.send(delivery())
        assert outcome.status in ("retry", "rejected")
        assert TOKEN not in repr(outcome) and "[token]" in outcome.detail


def test_a_delivery_key_that_would_break_the_header_is_a_bug_not_an_outcome():
    channel, provider = sms()
    with pytest.raises(requests.exceptions.InvalidHeader):
        channel.send(delivery(key="ev-41\r\nX-Injected: 1"))
    assert provider.sent == []


# ---- settings ----------------------------------------------------------------------------------

def test_the_channels_are_built_from_the_service_configuration():
    channel = SmsChannel.from_config({**SMS_CONFIG, "SMS_TIMEOUT": "2.5",
                                      "PHONE_DEFAULT_COUNTRY": "1"})
    assert (channel.name, channel.url, channel.sender) == (
        "sms", "https://sms.provider.example/v1", "LERDO")
    assert (channel.timeout, channel.default_country) == (2.5, "1")
    local = WhatsAppChannel.from_config({"WHATSAPP_API_URL": "http://127.0.0.1:8025",
                                         "WHATSAPP_API_TOKEN": "dev", "WHATSAPP_SENDER": "+5215"})
    assert (local.name, local.url, local.timeout, local.default_country) == (
        "whatsapp", "http://127.0.0.1:8025", 10, "52")


@pytest.mark.parametrize(("change", "complaint"), [
    ({"SMS_API_URL": ""}, "SMS_API_URL is required"),
    ({"SMS_API_URL": None}, "SMS_API_URL is required"),
    ({"SMS_API_URL": "sms.provider.example"}, "SMS_API_URL must be an http"),
    ({"SMS_API_URL": "ftp://sms.provider.example"}, "SMS_API_URL must be an http"),
    ({"SMS_API_URL": "https://"}, "SMS_API_URL must be an http"),
    ({"SMS_API_URL": "http://sms.provider.example"}, "in the clear"),
    ({"SMS_API_URL": "https://user:pw@sms.provider.example"}, "without credentials"),
    ({"SMS_API_TOKEN": ""}, "SMS_API_TOKEN is required"),
    ({"SMS_API_TOKEN": "tok\r\nX-Injected: 1"}, "SMS_API_TOKEN is required"),
    ({"SMS_SENDER": " "}, "SMS_SENDER is required"),
    ({"SMS_TIMEOUT": "soon"}, "SMS_TIMEOUT must be"),
    ({"SMS_TIMEOUT": "-1"}, "SMS_TIMEOUT must be"),
    ({"PHONE_DEFAULT_COUNTRY": "MX"}, "PHONE_DEFAULT_COUNTRY"),
])
def test_a_setting_that_cannot_work_is_refused_at_start_by_its_name(change, complaint):
    with pytest.raises(ValueError, match=complaint) as refused:
        SmsChannel.from_config({**SMS_CONFIG, **change})
    assert "X-Injected" not in str(refused.value)  # a token is never repeated in an error


def test_whatsapp_settings_are_refused_by_their_own_names():
    with pytest.raises(ValueError, match="WHATSAPP_API_URL is required"):
        WhatsAppChannel.from_config({**SMS_CONFIG})
    with pytest.raises(ValueError, match="WHATSAPP_SENDER is required"):
        WhatsAppChannel.from_config({**WHATSAPP_CONFIG, "WHATSAPP_SENDER": ""})
