"""A local web push service for development and tests: it mints subscriptions as a browser's push
service does, takes pushes as one does (RFC 8030), decrypts them (RFC 8291, aes128gcm), checks
their VAPID signature (RFC 8292) and keeps them; it shows nothing to anyone.

    python deploy/local/push_endpoint.py --host 127.0.0.1 --port 8089 --log var/push.jsonl

- POST /_subscribe answers a PushSubscription, {"endpoint": "http://host:port/push/<id>",
  "keys": {"p256dh", "auth"}}, whose private key and auth secret it keeps. A JSON body
  {"applicationServerKey": "<base64url>"} binds it to that VAPID key, as a browser's subscribe()
  does: a push not validly signed with it is then answered 403.
- POST /push/<id> takes a push. No `Authorization: vapid t=<JWT>, k=<key>` is 401; no TTL, a bad
  Topic or Urgency, or a body it cannot decrypt is 400; another encoding than aes128gcm 415; a
  body over 4096 bytes 413; an id it never minted, or one deleted, 410. Otherwise it records
  {id, message, ttl, topic, urgency, payload (the decrypted text), vapid_ok, vapid_error,
  vapid_key, vapid_claims} as one JSON line (of --log FILE, and of standard output) and
  answers 201 with the Location of the message.
- DELETE /push/<id> forgets a subscription (the citizen turned notifications off); GET /_received
  lists what was recorded. `--fail-first N` answers 500 to the first N pushes.

It runs as its own process and imports nothing of the project: it is the other side of the wire,
written from the RFCs, so that it can tell us when the push channel gets them wrong."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import secrets
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import http_ece  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_BODY = 4096  # RFC 8291 §4: what every push service takes
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
URGENCIES = ("very-low", "low", "normal", "high")


@dataclass
class Subscription:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    origin: str  # the endpoint's, which a push's VAPID `aud` must name
    server_key: str | None  # the applicationServerKey it is bound to, if any


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class PushService:
    """The subscriptions minted and the pushes taken; handlers of every thread share it."""

    def __init__(self, origin: str, log: IO[str] | None, fail_first: int) -> None:
        self.origin = origin  # ours when a request's Host header does not say it
        self.log, self.failures_left = log, fail_first
        self.subscriptions: dict[str, Subscription] = {}
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def subscribe(self, origin: str, server_key: str | None) -> dict[str, Any]:
        if server_key is not None and _public_key(server_key) is None:
            raise Refused(400, "applicationServerKey is not a P-256 public key in base64url")
        key, auth = ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16)
        sid = secrets.token_urlsafe(16)
        with self.lock:
            self.subscriptions[sid] = Subscription(key, auth, origin, server_key)
        point = key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{origin}/push/{sid}", "expirationTime": None,
                "keys": {"p256dh": _b64(point), "auth": _b64(auth)}}

    def unsubscribe(self, sid: str) -> bool:
        with self.lock:
            return self.subscriptions.pop(sid, None) is not None

    def take(self, sid: str, headers: Any, body: bytes) -> dict[str, Any]:
        """The record of a push to subscription `sid`, or Refused with the status to answer."""
        with self.lock:
            subscription = self.subscriptions.get(sid)
            if subscription is None:
                raise Refused(410, "no such subscription")
            if self.failures_left > 0:
                self.failures_left -= 1
                raise Refused(500, "failing on purpose (--fail-first)")
        vapid = _vapid(headers.get("Authorization"), subscription.origin)
        if subscription.server_key and (vapid["vapid_key"] != subscription.server_key
                                        or not vapid["vapid_ok"]):
            raise Refused(403, "not signed with the subscription's applicationServerKey: "
                               f"{vapid['vapid_error'] or 'another key'}")
        record = {"id": sid, "message": uuid.uuid4().hex, **_headers(headers), **vapid,
                  "payload": _decrypt(subscription, headers, body)}
        line = json.dumps(record, ensure_ascii=False)
        with self.lock:
            self.received.append(record)
            if self.log:
                self.log.write(line + "\n")
                self.log.flush()
        print(line, flush=True)
        return record


class Handler(BaseHTTPRequestHandler):
    server_version = "push-endpoint/1"
    service: PushService  # set on the subclass main() builds

    def do_POST(self) -> None:
        try:
            body = self._body()
            if self.path == "/_subscribe":
                asked = json.loads(body or b"{}")
                key = asked.get("applicationServerKey") if isinstance(asked, dict) else None
                self._answer(201, self.service.subscribe(self._origin(), key))
            elif self.path.startswith("/push/"):
                record = self.service.take(self.path.removeprefix("/push/"), self.headers, body)
                self._answer(201, None, Location=f"{self._origin()}/message/{record['message']}")
            else:
                self._answer(404, {"error": "no such door"})
        except Refused as refused:
            self._answer(refused.status, {"error": refused.reason})
        except ValueError as error:  # a subscribe body that is not JSON
            self._answer(400, {"error": str(error)})

    def do_DELETE(self) -> None:
        sid = self.path.removeprefix("/push/")
        gone = sid != self.path and self.service.unsubscribe(sid)
        self._answer(204 if gone else 410, None)

    def do_GET(self) -> None:
        if self.path == "/_received":
            with self.service.lock:
                received = list(self.service.received)
            self._answer(200, received)
        else:
            self._answer(404, {"error": "no such door"})

    def _body(self) -> bytes:
        # A subscribe may come without a body; a push never does.
        length = self.headers.get("Content-Length") or ("0" if self.path == "/_subscribe" else "")
        if not length.isdigit():
            raise Refused(411, "Content-Length is required")
        if int(length) > MAX_BODY:
            raise Refused(413, f"a push carries at most {MAX_BODY} bytes")
        return self.rfile.read(int(length))

    def _origin(self) -> str:
        """Where the client reached us: the origin of the endpoints we mint, and of `aud`."""
        host = self.headers.get("Host") or ""
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", host):
            return self.service.origin
        return f"http://{host}"

    def _answer(self, status: int, content: Any, **headers: str) -> None:
        data = b"" if content is None else json.dumps(content, ensure_ascii=False).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def _headers(headers: Any) -> dict[str, Any]:
    """RFC 8030's TTL (required), Topic and Urgency."""
    ttl, topic = headers.get("TTL", ""), headers.get("Topic")
    urgency = headers.get("Urgency", "normal")
    if not ttl.isdigit():
        raise Refused(400, "TTL is required: the seconds to keep an undelivered push")
    if topic is not None and not TOPIC.fullmatch(topic):
        raise Refused(400, "Topic must be at most 32 base64url characters")
    if urgency not in URGENCIES:
        raise Refused(400, f"Urgency must be one of {', '.join(URGENCIES)}")
    return {"ttl": int(ttl), "topic": topic, "urgency": urgency}


def _vapid(authorization: str | None, origin: str) -> dict[str, Any]:
    """What the VAPID header says and whether it holds: an ES256 JWT signed by the key `k`,
    whose `aud` is this endpoint's origin, `exp` within the next 24 hours, `sub` a contact."""
    scheme, _, rest = (authorization or "").partition(" ")
    params = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    token, key = params.get("t", ""), params.get("k", "")
    if scheme.lower() != "vapid" or not token or not key:
        raise Refused(401, "Authorization must be `vapid t=<JWT>, k=<key>`")
    found: dict[str, Any] = {"vapid_ok": False, "vapid_error": None, "vapid_key": key,
                             "vapid_claims": None}
    try:
        head, claims, signature = token.split(".")
        header, found["vapid_claims"] = json.loads(_unb64(head)), json.loads(_unb64(claims))
        public, raw = _public_key(key), _unb64(signature)
        if header.get("alg") != "ES256" or public is None or len(raw) != 64:
            raise ValueError("not an ES256 JWT with a P-256 key")
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                           int.from_bytes(raw[32:], "big")),
                      f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        found["vapid_error"] = "the signature is not the key's"
        return found
    except (ValueError, AttributeError) as error:  # JSONDecodeError and binascii.Error too
        found["vapid_error"] = f"a JWT that does not parse: {error}"
        return found
    found["vapid_error"] = _claims_error(found["vapid_claims"], origin)
    found["vapid_ok"] = found["vapid_error"] is None
    return found


def _claims_error(claims: Any, origin: str) -> str | None:
    now = time.time()
    if not isinstance(claims, dict):
        return "the claims are not an object"
    if claims.get("aud") != origin:
        return f"aud is {claims.get('aud')!r}, not this endpoint's origin {origin!r}"
    exp = claims.get("exp")
    if not isinstance(exp, int) or not now < exp <= now + 24 * 3600:
        return f"exp {exp!r} is not within the next 24 hours"
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https://")):
        return f"sub {sub!r} is not a mailto: or https: contact"
    return None


def _decrypt(subscription: Subscription, headers: Any, body: bytes) -> str:
    if (headers.get("Content-Encoding") or "").lower() != "aes128gcm":
        raise Refused(415, "Content-Encoding must be aes128gcm (RFC 8291)")
    try:
        plain: bytes = http_ece.decrypt(body, private_key=subscription.key,
                                        auth_secret=subscription.auth, version="aes128gcm")
        return plain.decode("utf-8")
    # ValueError: a sender key that is no P-256 point, or a payload that is not UTF-8.
    except (http_ece.ECEException, ValueError, TypeError) as error:
        reason = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        raise Refused(400, f"could not decrypt the push: {reason}") from None


def _public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(text))
    except (ValueError, TypeError):
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise binascii.Error("not base64url")
    digits = text.rstrip("=")
    return base64.urlsafe_b64decode(digits + "=" * (-len(digits) % 4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--log", type=Path, metavar="FILE",
                        help="append every push taken, as a JSON line")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer 500 to the first N pushes")
    args: Any = parser.parse_args(argv)
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
    log = args.log.open("a", encoding="utf-8") if args.log else None
    handler = type("BoundHandler", (Handler,), {"service": PushService(
        f"http://{args.host}:{args.port}", log, args.fail_first)})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"push endpoint on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if log:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
