"""The push a citizen's browser receives, as the channel sends it (no push service: requests'
transport is replaced by a fake that keeps what it was handed and answers as told). The browser
decrypts exactly the step's title and SMS; every attempt of one delivery replaces the last one
(same Topic); the VAPID signature names the push service. Then what each answer becomes, what a
subscription posted by anyone must be to be let in, and the key a browser subscribes with."""

from __future__ import annotations

import base64
import json
import time
from http import HTTPStatus
from typing import Any

import http_ece  # type: ignore[import-untyped]
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.notifications.channels import Delivery
from services.notifications.messages import Message
from services.notifications.webpush import (
    EXPIRED,
    MAX_PAYLOAD,
    PushChannel,
    check_subscription,
    generate_private_key,
    topic,
    vapid_public_key,
)

KEY = generate_private_key()
SUBJECT = "mailto:avisos@lerdo.gob.mx"
FCM = "https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bG4hBpQ2xR"
MESSAGE = Message(
    subject="Cuadrilla en camino · QRO-2026-000123",
    text="Hola:\n\nLa cuadrilla ya salió hacia el bache de la calle Ñandú.\n",
    html="<p>Hola:</p>",
    sms="La cuadrilla va en camino al bache de la calle Ñandú, llega a las 10:25. Siga su "
        "reporte: https://seguimiento.example.gob.mx/QRO-2026-000123",
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """Ana's browser: the key pair and auth secret it subscribed with, and the subscription."""

    def __init__(self, endpoint: str = FCM) -> None:
        self.key, self.auth = ec.generate_private_key(ec.SECP256R1()), b"\x07" * 16
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        self.subscription: dict[str, Any] = {"endpoint": endpoint, "expirationTime": None,
                             "keys": {"p256dh": b64(point), "auth": b64(self.auth)}}

    def read(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                           version="aes128gcm"))


class PushService:
    """Stands in for requests' transport: keeps each request and answers as it was told to."""

    def __init__(self, monkeypatch) -> None:
        self.requests: list[requests.PreparedRequest] = []
        self.answer(201, Location="https://fcm.googleapis.com/message/0:1702%2Ffe")
        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send",
                            lambda adapter, request, **options: self._send(request))

    def answer(self, status: int, text: str = "", **headers: str) -> None:
        self.status, self.text, self.headers = status, text, headers
        self.error: Exception | None = None

    def fail(self, error: Exception) -> None:
        self.error = error

    def _send(self, request: requests.PreparedRequest) -> requests.Response:
        self.requests.append(request)
        if self.error:
            raise self.error
        response = requests.Response()
        response.status_code, response.reason = self.status, HTTPStatus(self.status).phrase
        response.headers.update(self.headers)
        response._content, response.request = self.text.encode(), request
        response.url = request.url or ""
        return response


@pytest.fixture
def service(monkeypatch) -> PushService:
    return PushService(monkeypatch)


def channel(**settings) -> PushChannel:
    return PushChannel.from_config({"VAPID_PRIVATE_KEY": KEY, "VAPID_SUBJECT": SUBJECT,
                                    **settings})


def delivery(browser: Browser, key: str = "ev-41:sub-7:push", message: Message = MESSAGE) \
        -> Delivery:
    return Delivery(key=key, address=json.dumps(browser.subscription), message=message)


def test_the_browser_decrypts_exactly_the_step_title_and_the_sms(service):
    ana = Browser()
    outcome = channel(PUSH_TTL="3600").send(delivery(ana))
    assert outcome == ("sent", "https://fcm.googleapis.com/message/0:1702%2Ffe",
                       "201 from https://fcm.googleapis.com")
    [push] = service.requests
    assert (push.method, push.url) == ("POST", ana.subscription["endpoint"])
    assert push.headers["Content-Encoding"] == "aes128gcm"
    assert (push.headers["TTL"], push.headers["Urgency"]) == ("3600", "normal")
    assert ana.read(push.body) == {"title": "Cuadrilla en camino · QRO-2026-000123",
                                   "body": MESSAGE.sms}


def test_every_attempt_of_one_step_replaces_the_last_and_another_step_does_not(service):
    ana = Browser()
    for key in ("ev-41:sub-7:push", "ev-41:sub-7:push", "ev-42:sub-7:push"):
        assert channel().send(delivery(ana, key)).status == "sent"
    first, again, other = (push.headers["Topic"] for push in service.requests)
    assert first == again == topic("ev-41:sub-7:push") != other
    assert len(first) == 32 and set(first) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(("endpoint", "origin"), [
    (FCM, "https://fcm.googleapis.com"),
    ("https://updates.push.services.mozilla.com:443/wpush/v2/gAAAA",
     "https://updates.push.services.mozilla.com"),
    ("https://push.example.net:8443/p/1", "https://push.example.net:8443"),
    ("https://web.push.apple.com:/QGuG", "https://web.push.apple.com"),
])
def test_the_push_is_signed_with_our_vapid_key_for_that_push_service_only(service, endpoint,
                                                                            origin):
    channel().send(delivery(Browser(endpoint)))
    scheme, _, params = service.requests[0].headers["Authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == vapid_public_key(KEY)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(fields["k"]))
    # PyJWT, not py_vapid, checks it: ES256, the push service's origin, expiring within a day.
    claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=origin)
    assert claims["sub"] == SUBJECT and time.time() < claims["exp"] <= time.time() + 86400


@pytest.mark.parametrize(("status", "headers", "expected", "detail"), [
    (201, {"Location": "https://push.example.net/m/1"}, "sent", "201 from"),
    (202, {}, "sent", "202 from"),
    (404, {}, "rejected", EXPIRED),
    (410, {}, "rejected", EXPIRED),
    (400, {}, "rejected", "400 Bad Request"),
    (413, {}, "rejected", "413 Request Entity Too Large"),
    (401, {}, "retry", "our VAPID signature was refused"),
    (403, {}, "retry", "our VAPID signature was refused"),
    (429, {"Retry-After": "120"}, "retry", "429 Too Many Requests"),
    (500, {}, "retry", "500 Internal Server Error"),
    (503, {}, "retry", "503 Service Unavailable"),
])
def test_what_each_answer_of_the_push_service_becomes(service, status, headers, expected, detail):
    service.answer(status, "the service's words", **headers)
    outcome = channel().send(delivery(Browser()))
    assert (outcome.status, outcome.detail[:len(detail)]) == (expected, detail)
    assert outcome.provider_id == (headers.get("Location") if expected == "sent" else None)
    if expected != "sent":
        assert "the service's words" in outcome.detail
    if status == 429:
        assert "Retry-After: 120" in outcome.detail


@pytest.mark.parametrize("error", [requests.ConnectionError("connection refused"),
                                   requests.ConnectTimeout("connect timed out"),
                                   requests.ReadTimeout("read timed out")])
def test_a_push_service_out_of_reach_means_retry(service, error):
    service.fail(error)
    outcome = channel().send(delivery(Browser()))
    assert outcome.status == "retry" and type(error).__name__ in outcome.detail


def test_a_push_service_that_sends_us_elsewhere_is_not_followed(service):
    service.answer(307, Location="http://169.254.169.254/latest/meta-data/")
    outcome = channel().send(delivery(Browser()))
    assert outcome.status == "rejected" and outcome.detail.startswith("307")
    assert len(service.requests) == 1


@pytest.mark.parametrize("address", [
    "not json", "[]", json.dumps({"endpoint": "http://push.example.net/x"}),
    json.dumps(Browser("http://push.example.net/x").subscription),
    json.dumps(Browser("https://10.0.0.7/push/x").subscription),
])
def test_an_address_that_is_no_subscription_is_rejected_and_nothing_is_sent(service, address):
    outcome = channel().send(Delivery(key="ev-41:sub-7:push", address=address, message=MESSAGE))
    assert outcome.status == "rejected" and outcome.detail.startswith("not a push subscription")
    assert service.requests == []


def test_the_local_endpoint_over_http_is_reached_only_when_allowed(service):
    local = Browser("http://127.0.0.1:8089/push/abc")
    assert channel().send(delivery(local)).status == "rejected"
    assert channel(PUSH_ALLOW_HTTP="1").send(delivery(local)).status == "sent"
    assert [push.url for push in service.requests] == ["http://127.0.0.1:8089/push/abc"]


def test_a_message_too_long_for_a_push_is_rejected_before_it_is_sent(service):
    long = Message(subject="Cuadrilla en camino", text="", html="", sms="ñ" * MAX_PAYLOAD)
    outcome = channel().send(delivery(Browser(), message=long))
    assert outcome.status == "rejected" and str(MAX_PAYLOAD) in outcome.detail
    assert service.requests == []


# ---- what the subscribe door lets in ----------------------------------------------------------

GOOD = Browser().subscription
P256DH, AUTH = GOOD["keys"]["p256dh"], GOOD["keys"]["auth"]


def test_a_browser_subscription_is_let_in_with_its_keys_unpadded_and_nothing_else():
    posted = {**GOOD, "keys": {"p256dh": P256DH + "=", "auth": AUTH + "=="}, "extra": 1}
    assert check_subscription(posted) == {"endpoint": GOOD["endpoint"],
                                          "keys": {"p256dh": P256DH, "auth": AUTH}}


def keys(**changed) -> dict:
    return {**GOOD, "keys": {"p256dh": P256DH, "auth": AUTH, **changed}}


NOT_ON_THE_CURVE = b64(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(("posted", "complaint"), [
    (None, "JSON object"),
    ("https://fcm.googleapis.com/fcm/send/x", "JSON object"),
    ([GOOD], "JSON object"),
    ({"keys": GOOD["keys"]}, "endpoint"),
    ({**GOOD, "endpoint": 42}, "endpoint"),
    ({**GOOD, "endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "https"),
    ({**GOOD, "endpoint": "javascript:alert(1)"}, "https"),
    ({**GOOD, "endpoint": "https://fcm.googleapis.com/" + "a" * 2048}, "longer than 2048"),
    ({**GOOD, "endpoint": "https://fcm.googleapis.com/x y"}, "without spaces"),
    ({**GOOD, "endpoint": "https://fcm.googleapis.com/x\r\nHost: evil"}, "without spaces"),
    ({**GOOD, "endpoint": "https://fcm.googleapis.com/ñ"}, "ASCII"),
    ({**GOOD, "endpoint": "https://user:pw@fcm.googleapis.com/x"}, "no user"),
    ({**GOOD, "endpoint": "https://fcm.googleapis.com:99999/x"}, "port"),
    ({**GOOD, "endpoint": "https://[::1/x"}, "not a URL"),
    ({**GOOD, "endpoint": "https://127.0.0.1/push/x"}, "host"),
    ({**GOOD, "endpoint": "https://localhost/push/x"}, "host"),
    ({**GOOD, "endpoint": "https://metadata/push/x"}, "host"),
    ({"endpoint": GOOD["endpoint"]}, "keys"),
    ({**GOOD, "keys": [P256DH, AUTH]}, "keys"),
    (keys(p256dh=None), "p256dh is missing"),
    (keys(auth=""), "auth is missing"),
    (keys(auth=AUTH[:-2]), "16 bytes"),
    (keys(auth=AUTH + "AAAA"), "16 bytes"),
    (keys(auth=AUTH[:-1]), "16 bytes"),  # 21 characters: a length no encoding has
    (keys(auth="F3Gk6lJ4l8Z3nA0h4qB6Y+"), "16 bytes"),  # base64, not base64url
    (keys(auth="%%%%%%%%%%%%%%%%%%%%%%"), "16 bytes"),
    (keys(p256dh=P256DH[:-4]), "65 bytes"),
    (keys(p256dh=P256DH * 50), "65 bytes"),
    (keys(p256dh=b64(b"\x02" + b"\x01" * 64)), "uncompressed point"),
    (keys(p256dh=NOT_ON_THE_CURVE), "P-256 curve"),
])
def test_a_subscription_that_is_not_one_is_refused_saying_why(posted, complaint):
    with pytest.raises(ValueError, match=complaint):
        check_subscription(posted)


def test_the_local_endpoint_is_let_in_only_when_allowed():
    local = {**GOOD, "endpoint": "http://127.0.0.1:8089/push/abc"}
    with pytest.raises(ValueError, match="https"):
        check_subscription(local)
    assert check_subscription(local, allow_http=True)["endpoint"] == local["endpoint"]


# ---- the VAPID key ----------------------------------------------------------------------------

def test_a_browser_subscribes_with_the_public_half_as_an_uncompressed_point():
    public = vapid_public_key(KEY)
    raw = unb64(public)
    assert len(public) == 87 and "=" not in public and public.startswith("B")
    assert len(raw) == 65 and raw[0] == 4
    own = serialization.load_pem_private_key(KEY.encode(), None).public_key()
    assert raw == own.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.UncompressedPoint)


def test_the_key_reads_the_same_as_pem_as_raw_and_as_der(service):
    key = serialization.load_pem_private_key(KEY.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    raw = b64(key.private_numbers().private_value.to_bytes(32, "big"))
    der = b64(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    assert vapid_public_key(raw) == vapid_public_key(der) == vapid_public_key(KEY)
    channel(VAPID_PRIVATE_KEY=raw).send(delivery(Browser()))
    assert f"k={vapid_public_key(KEY)}" in service.requests[0].headers["Authorization"]


def test_every_generated_key_is_a_new_p256_key():
    first, second = generate_private_key(), generate_private_key()
    assert first.startswith("-----BEGIN PRIVATE KEY-----") and first != second
    assert vapid_public_key(first) != vapid_public_key(second)


@pytest.mark.parametrize("key", ["", "c2VjcmV0", "A" * 43, "-----BEGIN PRIVATE KEY-----\nxx\n"
                                 "-----END PRIVATE KEY-----"])
def test_a_key_that_is_not_one_is_refused_without_repeating_it(key):
    with pytest.raises(ValueError, match="VAPID_PRIVATE_KEY") as refused:
        channel(VAPID_PRIVATE_KEY=key)
    assert not key or key not in str(refused.value)


@pytest.mark.parametrize("subject", ["", "avisos@lerdo.gob.mx", "mailto:avisos",
                                     "http://lerdo.gob.mx", "https://"])
def test_a_subject_push_services_cannot_reach_us_at_is_refused(subject):
    with pytest.raises(ValueError, match="VAPID_SUBJECT"):
        channel(VAPID_SUBJECT=subject)


def test_the_settings_a_city_leaves_out_have_their_defaults():
    push = channel(VAPID_SUBJECT="https://lerdo.gob.mx/avisos")
    assert (push.name, push.ttl, push.timeout, push.allow_http) == ("push", 86400, 10.0, False)
    assert channel(PUSH_TTL="0", PUSH_TIMEOUT="2.5").ttl == 0
