"""A local fake of a card payment gateway, for development and tests: billing opens a checkout,
the citizen pays (or not) on the fake's page, and the fake calls billing back, signed.

    python deploy/local/fake_payments.py --host 127.0.0.1 --port 8030 --secret dev-secret \\
        --log var/payments.jsonl

POST /checkouts with `Authorization: Bearer <--secret>` (401 otherwise) and
    {"reference": "PAY-1", "amount": "1275.00", "currency": "MXN", "description": "Predial 2026",
     "return_url": "http://...", "callback_url": "http://..."}
answers 201 {"id": "chk_1", "url": "<base>/pay/chk_1"}; the same reference again answers 200 with
that checkout (409 if its amount or currency differ); a bad body 400 {"error": "..."}.
GET /checkouts/<id> and GET /checkouts?reference=R (bearer) answer the checkout's state:
{"id", "reference", "status": "pending"|"approved"|"declined", "amount", "currency",
"description", "authorization", "paid_at", "url"}.

GET /pay/<id> is the citizen's page: "Pagar", "Rechazar" and "Sin respuesta" POST /pay/<id> with
outcome=success|decline|timeout. Success and decline POST a callback to callback_url,
    {"id", "reference", "status": "approved"|"declined", "amount", "currency",
     "authorization": "AUTH-…" (approved only), "paid_at": "2026-03-01T10:00:00Z"}
signed `X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, tried up to 5 times
until a 2xx, then redirect 303 to return_url?reference=R&status=S. A timeout calls back nothing
and the checkout stays pending.

Control endpoints, for tests (no token; the fake listens on this machine only):
    GET  /_checkouts                    every checkout, oldest first, with its callback attempts
    POST /_callbacks/<id>/resend        send its callback again (the same body, signed anew)
    POST /_mode {"auto": "success"}     a new checkout completes at once with that outcome
                                        (success, decline, timeout; null: wait for the page)
    POST /_mode {"down": true}          /checkouts answers 503 (POST and GET) until reset
    POST /_mode {"reset": true}         back to normal (checkouts are kept)

Each checkout and each callback is one JSON line in --log. Stdlib only, no project imports."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

REFERENCE = re.compile(r"[A-Za-z0-9._-]{1,64}")
AMOUNT = re.compile(r"[0-9]{1,12}\.[0-9]{2}")
OUTCOMES = {"success": "approved", "decline": "declined", "timeout": None}
ATTEMPTS = 5  # callback deliveries before giving up, 0.2 s apart and doubling: ~3 s in all
MAX_BODY = 64 * 1024
NOT_FOUND = {"error": "no such checkout"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None  # a callback answered 3xx was not taken: it is retried, never followed


OPENER = urllib.request.build_opener(NoRedirect)


class Gateway:
    """What the fake knows: the checkouts, by id and by reference, and its mode."""

    def __init__(self, secret: str, log: TextIO | None, public_url: str | None) -> None:
        self.secret, self.log, self.public_url = secret, log, public_url
        self.lock = threading.Lock()
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.by_reference: dict[str, str] = {}
        self.auto: str | None = None
        self.down = False

    def set_mode(self, mode: dict[str, Any]) -> None:
        with self.lock:
            if mode.get("reset"):
                self.auto, self.down = None, False
            if "auto" in mode:
                if mode["auto"] not in (*OUTCOMES, None):
                    raise ValueError(f"'auto' is one of {sorted(OUTCOMES)} or null")
                self.auto = mode["auto"]
            self.down = bool(mode.get("down", self.down))

    def open(self, body: dict[str, Any], base: str) -> tuple[int, dict[str, Any]]:
        """A new checkout (201), or the one of that reference (200, 409 if it differs)."""
        with self.lock:
            known = self.checkouts.get(self.by_reference.get(body["reference"], ""))
            if known:
                same = (known["amount"], known["currency"]) == (body["amount"], body["currency"])
                if not same:
                    return 409, {"error": f"reference {body['reference']} is a checkout of "
                                          f"{known['amount']} {known['currency']}"}
                return 200, known
            checkout_id = f"chk_{len(self.checkouts) + 1}"
            checkout = {"id": checkout_id, **body, "status": "pending", "authorization": None,
                        "paid_at": None, "url": f"{self.public_url or base}/pay/{checkout_id}",
                        "callback": None, "deliveries": []}
            self.checkouts[checkout_id] = checkout
            self.by_reference[body["reference"]] = checkout_id
            auto = self.auto
        self.record({"event": "checkout", **public(checkout)})
        if auto and self.complete(checkout, auto):
            threading.Thread(target=self.deliver, args=(checkout,), daemon=True).start()
        return 201, checkout

    def complete(self, checkout: dict[str, Any], outcome: str) -> bool:
        """Settle a pending checkout; True when a callback is now due (not for a timeout)."""
        status = OUTCOMES[outcome]
        with self.lock:
            if checkout["status"] != "pending":
                raise ValueError(f"checkout {checkout['id']} is already {checkout['status']}")
            if status is None:
                return False
            checkout["status"] = status
            checkout["paid_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            callback = {key: checkout[key] for key in ("id", "reference", "status", "amount",
                                                       "currency")}
            if status == "approved":
                checkout["authorization"] = f"AUTH-{secrets.token_hex(3).upper()}"
                callback["authorization"] = checkout["authorization"]
            callback["paid_at"] = checkout["paid_at"]
            # Kept as sent, so that a resend is the same bytes.
            checkout["callback"] = json.dumps(callback)
            return True

    def deliver(self, checkout: dict[str, Any]) -> bool:
        """POST the checkout's callback until a 2xx answers it, at most ATTEMPTS times."""
        body = checkout["callback"].encode()
        attempts: list[dict[str, Any]] = []
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.2 * 2 ** (attempt - 1))
            stamp = str(int(time.time()))
            signature = hmac.new(self.secret.encode(), f"{stamp}.".encode() + body,
                                 hashlib.sha256).hexdigest()
            request = urllib.request.Request(checkout["callback_url"], data=body, headers={
                "Content-Type": "application/json", "X-Signature": f"t={stamp},v1={signature}"})
            try:
                with OPENER.open(request, timeout=5) as answer:
                    attempts.append({"status": answer.status})
            except urllib.error.HTTPError as error:
                attempts.append({"status": error.code})
            except OSError as error:
                attempts.append({"error": f"{type(error).__name__}: {error}"})
            if 200 <= attempts[-1].get("status", 0) < 300:
                break
        delivered = 200 <= attempts[-1].get("status", 0) < 300
        with self.lock:
            checkout["deliveries"].append({"attempts": attempts, "delivered": delivered})
        self.record({"event": "callback", "id": checkout["id"], "body": checkout["callback"],
                     "attempts": attempts, "delivered": delivered})
        return delivered

    def find(self, checkout_id: str = "", reference: str = "") -> dict[str, Any] | None:
        with self.lock:
            return self.checkouts.get(checkout_id or self.by_reference.get(reference, ""))

    def record(self, entry: dict[str, Any]) -> None:
        if self.log:
            with self.lock:
                print(json.dumps(entry, ensure_ascii=False), file=self.log, flush=True)


def public(checkout: dict[str, Any]) -> dict[str, Any]:
    """A checkout's state as the API shows it."""
    return {key: checkout[key] for key in ("id", "reference", "status", "amount", "currency",
                                           "description", "authorization", "paid_at", "url")}


def invalid(body: Any) -> str | None:
    """Why the fake would not open this checkout, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("reference"), str) or not REFERENCE.fullmatch(body["reference"]):
        return "'reference' is 1 to 64 of A-Z a-z 0-9 . _ -"
    amount = body.get("amount")
    if not isinstance(amount, str) or not AMOUNT.fullmatch(amount) or Decimal(amount) <= 0:
        return f"'amount' is a string of pesos above 0 with two decimals, not {amount!r}"
    if body.get("currency") != "MXN":
        return "'currency' must be MXN"
    if not isinstance(body.get("description"), str) or len(body["description"]) > 255:
        return "'description' is a string of at most 255 characters"
    for key in ("return_url", "callback_url"):
        url = body.get(key)
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") \
                or not urlsplit(url).hostname:
            return f"'{key}' must be an http(s) address"
    return None


PAGE = """<!doctype html><html lang="es"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Pago en línea</title>
<style>body{{font-family:system-ui,sans-serif;margin:0;background:#f2f4f7}}
main{{max-width:26rem;margin:0 auto;padding:1.5rem}}.amount{{font-size:2.2rem;font-weight:700}}
button{{display:block;width:100%;padding:1rem;margin:.6rem 0;font-size:1.1rem;border:0;
border-radius:.5rem;background:#0b6e4f;color:#fff}}button.other{{background:#9aa5b1}}
small{{color:#52606d}}</style></head><body><main><p><small>Pasarela de pago de prueba</small></p>
{content}</main></body></html>"""


def page(checkout: dict[str, Any], note: str = "") -> str:
    amount = f"${Decimal(checkout['amount']):,.2f} {checkout['currency']}"
    content = (f"<p class=amount>{html.escape(amount)}</p>"
               f"<p>{html.escape(checkout['description'])}</p>"
               f"<p><small>Referencia {html.escape(checkout['reference'])}</small></p>")
    if note:
        content += f"<p><strong>{html.escape(note)}</strong></p>"
    elif checkout["status"] == "pending":
        content += (f'<form method="post" action="/pay/{checkout["id"]}">'
                    '<button name="outcome" value="success">Pagar</button>'
                    '<button name="outcome" value="decline" class="other">Rechazar</button>'
                    '<button name="outcome" value="timeout" class="other">Sin respuesta</button>'
                    "</form>")
    else:
        word = "aprobado" if checkout["status"] == "approved" else "rechazado"
        content += f"<p><strong>Este pago ya fue {word}.</strong></p>"
    return PAGE.format(content=content)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    gateway: Gateway  # set on the subclass main() builds

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/_checkouts":
            with self.gateway.lock:  # a copy: answered outside the lock, to a client maybe slow
                checkouts = json.loads(json.dumps(list(self.gateway.checkouts.values())))
            self.answer(200, checkouts)
        elif parts.path.startswith("/pay/"):
            checkout = self.gateway.find(parts.path.removeprefix("/pay/"))
            if checkout:
                self.answer(200, page(checkout))
            else:
                self.answer(404, NOT_FOUND)
        elif parts.path == "/checkouts" or parts.path.startswith("/checkouts/"):
            if self.barred():
                return
            reference = parse_qs(parts.query).get("reference", [""])[0]
            checkout = self.gateway.find(parts.path.removeprefix("/checkouts").strip("/"),
                                         reference)
            if checkout:
                self.answer(200, public(checkout))
            else:
                self.answer(404, NOT_FOUND)
        else:
            self.answer(404, {"error": f"no {self.path} here"})

    def do_POST(self) -> None:
        path, body = urlsplit(self.path).path, self.read_body()
        if path == "/checkouts":
            self.checkout(body)
        elif path.startswith("/pay/"):
            self.pay(path.removeprefix("/pay/"), parse_qs(body.decode("utf-8", "replace")))
        elif path == "/_mode":
            try:
                self.gateway.set_mode(json.loads(body or b"{}"))
                self.answer(200, {"ok": True})
            except (ValueError, AttributeError) as error:
                self.answer(400, {"error": str(error)})
        elif re.fullmatch(r"/_callbacks/[^/]+/resend", path):
            checkout = self.gateway.find(path.split("/")[2])
            if not checkout or not checkout["callback"]:
                self.answer(409, {"error": "that checkout has no callback to resend"})
            else:
                self.answer(200, {"delivered": self.gateway.deliver(checkout)})
        else:
            self.answer(404, {"error": f"no {self.path} here"})

    def checkout(self, raw: bytes) -> None:
        if self.barred():
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        reason = invalid(body)
        if reason:
            self.answer(400, {"error": reason})
            return
        fields = ("reference", "amount", "currency", "description", "return_url", "callback_url")
        base = f"http://{self.headers.get('Host') or '127.0.0.1'}"
        status, checkout = self.gateway.open({key: body[key] for key in fields}, base)
        self.answer(status, {"id": checkout["id"], "url": checkout["url"]} if status < 300
                    else checkout)

    def pay(self, checkout_id: str, form: dict[str, list[str]]) -> None:
        """The citizen pressed a button of the page."""
        checkout, outcome = self.gateway.find(checkout_id), form.get("outcome", [""])[0]
        if not checkout or outcome not in OUTCOMES:
            self.answer(404 if not checkout else 400, {"error": "no such checkout or outcome"})
            return
        try:
            due = self.gateway.complete(checkout, outcome)
        except ValueError:
            self.answer(409, page(checkout))
            return
        if not due:
            self.answer(200, page(checkout, "El banco no respondió. Tu pago quedó pendiente: "
                                            "no se hizo ningún cargo por ahora."))
            return
        self.gateway.deliver(checkout)  # the citizen waits, as on a real gateway's page
        back = urlencode({"reference": checkout["reference"], "status": checkout["status"]})
        url = checkout["return_url"]
        self.answer(303, "", location=f"{url}{'&' if urlsplit(url).query else '?'}{back}")

    def barred(self) -> bool:
        """Answered 401 without the bearer secret, 503 while /_mode says the gateway is down."""
        given = self.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {self.gateway.secret}".encode()):
            self.answer(401, {"error": "invalid or missing bearer token"})
        elif self.gateway.down:
            self.answer(503, {"error": "the gateway is down (forced by /_mode)"})
        else:
            return False
        return True

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:  # not read, so the connection cannot carry another request
            self.close_connection = True
            return b""
        return self.rfile.read(length)

    def answer(self, status: int, payload: Any, location: str | None = None) -> None:
        is_page = isinstance(payload, str)
        data = (payload if is_page else json.dumps(payload, ensure_ascii=False)).encode()
        try:
            self.send_response(status)
            kind = "text/html; charset=utf-8" if is_page else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument("--secret", required=True,
                        help="the bearer token of API calls, and the key callbacks are signed with")
    parser.add_argument("--log", type=Path, help="append each checkout and callback to FILE")
    parser.add_argument("--public-url", help="the base of checkout URLs (default: the Host the "
                                             "API call came to)")
    args: Any = parser.parse_args(argv)
    log = args.log.open("a", encoding="utf-8") if args.log else None
    gateway = Gateway(args.secret, log, args.public_url and args.public_url.rstrip("/"))
    handler = type("GatewayHandler", (Handler,), {"gateway": gateway})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"fake payments on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
