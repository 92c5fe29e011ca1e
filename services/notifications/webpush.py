"""The web push channel: a step of a report as a browser notification (RFC 8030), encrypted for the
citizen's browser (RFC 8291, aes128gcm) and signed with the municipality's VAPID key (RFC 8292),
sent with pywebpush over requests, which runs green under eventlet's patched sockets.

A citizen who presses "avísame" on the status page gives us the browser's PushSubscription
({"endpoint", "keys": {"p256dh", "auth"}}); `check_subscription` is what the subscribe door lets in,
and the delivery's address is that subscription as JSON text. The browser is told, as JSON:

    {"title": "Cuadrilla en camino · QRO-2026-000123", "body": "La cuadrilla va en camino… https://…"}

Every attempt of one delivery carries the same Topic, derived from its key: a push service that
still holds an undelivered attempt replaces it with the newer one instead of showing both."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush  # type: ignore[import-untyped]

from services.notifications.channels import Delivery, Outcome, rejected, retry, sent

# The detail of a "rejected" outcome whose subscription is gone (the browser unsubscribed, or the
# push service let it expire): the caller drops the subscription when a detail starts with it.
EXPIRED = "subscription expired"
# The most a push message may carry: 4096 octets of body, less aes128gcm's header (86), the
# record's delimiter (1) and its tag (16) (RFC 8291 §4). More is refused by every push service.
MAX_PAYLOAD = 3993
MAX_ENDPOINT = 2048


class PushChannel:
    """Web push to the citizen's browser through whichever push service its subscription names
    (Google's, Mozilla's, Apple's… or the local endpoint of deploy/local/push_endpoint.py)."""

    name = "push"

    def __init__(self, private_key: str, subject: str, *, ttl: int = 86400,
                 timeout: float = 10, allow_http: bool = False) -> None:
        self.subject, self.ttl, self.timeout = _subject(subject), int(ttl), float(timeout)
        if self.ttl < 0:
            raise ValueError(f"PUSH_TTL must be a number of seconds, not {ttl!r}")
        self.allow_http = allow_http  # the local endpoint, in development and tests only
        # Our own check of the subject stands (`_subject`): py_vapid's would refuse an https one
        # with a path, which RFC 8292 allows.
        self._vapid = Vapid(private_key=_private_key(private_key), conf={"no-strict": True})

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PushChannel:
        """The channel the service's configuration names: VAPID_PRIVATE_KEY (PEM, or the
        base64url raw or DER form; required), VAPID_SUBJECT ("mailto:…" or an https URL at which
        push services can reach the municipality; required), PUSH_TTL (seconds a push service
        keeps an undelivered push), PUSH_TIMEOUT (seconds), PUSH_ALLOW_HTTP (development only:
        the local endpoint)."""
        key = str(config.get("VAPID_PRIVATE_KEY") or "").strip()
        if not key:
            raise ValueError("VAPID_PRIVATE_KEY is required: the key our pushes are signed with")
        subject = str(config.get("VAPID_SUBJECT") or "").strip()
        if not subject:
            raise ValueError("VAPID_SUBJECT is required: how a push service reaches us")
        ttl = config.get("PUSH_TTL")
        return cls(key, subject, ttl=int(86400 if ttl in (None, "") else ttl),
                   timeout=float(config.get("PUSH_TIMEOUT") or 10),
                   allow_http=str(config.get("PUSH_ALLOW_HTTP") or "").strip().lower()
                   in ("1", "true", "yes", "on"))

    def payload(self, delivery: Delivery) -> str:
        """What the browser's service worker is handed: the email's subject and the SMS."""
        message = delivery.message
        return json.dumps({"title": message.subject, "body": message.sms},
                          ensure_ascii=False, separators=(",", ":"))

    def send(self, delivery: Delivery) -> Outcome:
        """Hand the push to the subscription's push service once. 201/202 is "sent" (named by the
        Location the service answers); 404/410 "rejected" as EXPIRED; another 4xx "rejected",
        but 401/403 (our VAPID key or subject refused: a setting) and 429 "retry", as are 5xx,
        no connection and a timeout. A push service that redirects is "rejected": we do not
        follow a subscription's endpoint anywhere else."""
        try:
            subscription = check_subscription(json.loads(delivery.address),
                                              allow_http=self.allow_http)
        except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
            return rejected(f"not a push subscription: {error}")
        payload = self.payload(delivery)
        if len(payload.encode()) > MAX_PAYLOAD:
            return rejected(f"the push is {len(payload.encode())} bytes, over {MAX_PAYLOAD}")
        try:
            response = self._transmit(subscription, payload, topic(delivery.key))
        except WebPushException as error:
            if error.response is None:
                return rejected(error.message)
            return _by_status(error.response)
        except requests.TooManyRedirects as error:
            code = error.response.status_code if error.response is not None else "3xx"
            return rejected(f"{code}: the push service sent us elsewhere, and we do not follow")
        except (requests.RequestException, OSError) as error:
            return retry(f"{type(error).__name__}: {error}")
        return _by_status(response)

    def _transmit(self, subscription: dict[str, Any], payload: str,
                  topic: str) -> requests.Response:
        endpoint = subscription["endpoint"]
        claims = {"sub": self.subject, "aud": _origin(endpoint),
                  "exp": int(time.time()) + 12 * 3600}  # RFC 8292: at most 24 hours ahead
        with requests.Session() as session:
            session.max_redirects = 0
            response: requests.Response = webpush(
                subscription, data=payload, vapid_private_key=self._vapid, vapid_claims=claims,
                content_encoding="aes128gcm", ttl=self.ttl, timeout=self.timeout,
                headers={"Urgency": "normal", "Topic": topic}, requests_session=session)
        return response


def topic(key: str) -> str:
    """The Topic of every attempt of the delivery with this key: 32 base64url characters."""
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode()[:32]


def check_subscription(data: Any, *, allow_http: bool = False) -> dict[str, Any]:
    """The PushSubscription a browser posted (its `toJSON()`), as the channel sends to it:

        {"endpoint": "https://fcm.googleapis.com/fcm/send/dpH5…", "expirationTime": null,
         "keys": {"p256dh": "BIPUL12DLfytvTajnryr2PRdAgX…", "auth": "F3Gk6lJ4l8Z3nA0h4qB6YQ"}}

    Answers {"endpoint", "keys": {"p256dh", "auth"}}, keys in unpadded base64url; anything else the
    browser sent is dropped. Raises ValueError saying what is wrong. The endpoint must be https
    and name a host, not an address (a subscription is data from the Internet, and we POST to
    it); `allow_http` lifts both for the local endpoint of development and tests."""
    if not isinstance(data, Mapping):
        raise ValueError("a push subscription is a JSON object with an endpoint and keys")
    endpoint = _endpoint(data.get("endpoint"), allow_http)
    keys = data.get("keys")
    if not isinstance(keys, Mapping):
        raise ValueError("a push subscription needs keys: p256dh and auth")
    p256dh, auth = _key(keys.get("p256dh"), "p256dh", 65), _key(keys.get("auth"), "auth", 16)
    try:
        if p256dh[0] != 4:
            raise ValueError
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise ValueError("keys.p256dh is not an uncompressed point of the P-256 curve") from None
    return {"endpoint": endpoint, "keys": {"p256dh": _b64(p256dh), "auth": _b64(auth)}}


def vapid_public_key(private_key: str) -> str:
    """The applicationServerKey a browser subscribes with: the public half of VAPID_PRIVATE_KEY
    as an uncompressed P-256 point in unpadded base64url (87 characters, "B…")."""
    public = _private_key(private_key).public_key()
    return _b64(public.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint))


def generate_private_key() -> str:
    """A new VAPID private key, PEM (PKCS #8), for VAPID_PRIVATE_KEY. Keep it: browsers subscribed
    with its public key refuse pushes signed with any other."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def _by_status(response: requests.Response) -> Outcome:
    code = response.status_code
    answer = " ".join((response.text or "")[:200].split())
    detail = f"{code} {response.reason or ''}".strip() + (f": {answer}" if answer else "")
    if 200 <= code < 300:
        where = _origin(response.url)  # the endpoint's path names the subscription: not logged
        return sent(response.headers.get("Location") or None, f"{code} from {where}")
    if code in (404, 410):
        return rejected(f"{EXPIRED}: {detail}")
    if code in (401, 403):
        return retry(f"our VAPID signature was refused, check VAPID_PRIVATE_KEY and "
                     f"VAPID_SUBJECT: {detail}")
    if code == 429 or code >= 500:
        after = response.headers.get("Retry-After")
        return retry(detail + (f" (Retry-After: {after})" if after else ""))
    return rejected(detail) if 400 <= code < 500 else retry(detail)


_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")


def _endpoint(value: Any, allow_http: bool) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a push subscription needs an endpoint: its push service's URL")
    if len(value) > MAX_ENDPOINT:
        raise ValueError(f"endpoint is longer than {MAX_ENDPOINT} characters")
    if not value.isascii() or any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError("endpoint must be a URL of printable ASCII without spaces")
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed [IPv6 literal
        raise ValueError("endpoint is not a URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise ValueError(f"endpoint must be an {' or '.join(schemes)} URL")
    try:
        host, _ = parts.hostname or "", parts.port
    except ValueError:
        raise ValueError("endpoint has a port that is not one") from None
    if "@" in parts.netloc or parts.fragment or not _HOST.fullmatch(host):
        raise ValueError("endpoint must be a push service's URL: a host name, no user, "
                         "no fragment")
    if not (allow_http or _public_name(host)):
        raise ValueError(f"endpoint must name a push service's host, not {host!r}")
    return value


def _public_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return "." in host and not (host == "localhost" or host.endswith(".localhost"))


def _key(value: Any, name: str, size: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"keys.{name} is missing")
    if len(value) > 4 * size // 3 + 4 or not _B64URL.fullmatch(value):
        raise ValueError(f"keys.{name} must be {size} bytes in base64url")
    digits = value.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(digits + "=" * (-len(digits) % 4))
    except binascii.Error:  # a length no encoding has
        raise ValueError(f"keys.{name} must be {size} bytes in base64url") from None
    if len(raw) != size:
        raise ValueError(f"keys.{name} must be {size} bytes in base64url, not {len(raw)}")
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _origin(endpoint: str) -> str:
    """The endpoint's origin, the `aud` a push service checks: scheme and host, and the port
    unless it is the scheme's own."""
    parts = urlsplit(endpoint)
    own = {"https": 443, "http": 80}.get(parts.scheme)
    port = "" if parts.port in (None, own) else f":{parts.port}"
    return f"{parts.scheme}://{parts.hostname}{port}"


def _subject(subject: str) -> str:
    """VAPID_SUBJECT: a contact the push services can use when our pushes give them trouble."""
    text = str(subject).strip()
    if re.fullmatch(r"mailto:[^@\s/]+@[^@\s/]+\.[^@\s/]+", text):
        return text
    try:
        parts = urlsplit(text)
        if parts.scheme == "https" and parts.hostname and text.isascii() and " " not in text:
            return text
    except ValueError:
        pass
    raise ValueError(f"VAPID_SUBJECT must be a mailto: address or an https URL, not {text!r}")


def _private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """VAPID_PRIVATE_KEY: PEM, or base64url of the raw 32 bytes or of DER (py_vapid's forms).
    A key that is not one raises ValueError without repeating it: it is a secret, and error
    messages end up in logs."""
    text = str(text).strip()
    key: object = None
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            compact = "".join(text.split()).replace("+", "-").replace("/", "_").rstrip("=")
            raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
            key = (ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
                   if len(raw) == 32 else serialization.load_der_private_key(raw, password=None))
    except (ValueError, TypeError, UnicodeError, binascii.Error, UnsupportedAlgorithm):
        key = None
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)):
        raise ValueError("VAPID_PRIVATE_KEY is not a P-256 private key (PEM, or base64url raw "
                         "or DER)")
    return key
