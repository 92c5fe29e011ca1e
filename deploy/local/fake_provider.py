"""A local fake of an SMS / WhatsApp provider's HTTP API, for development and tests: it speaks the
"generic provider" format of services/notifications/phones.py, keeps every message it takes,
delivers none, and can be told to fail, to answer slowly or not at all.

    python deploy/local/fake_provider.py --host 127.0.0.1 --port 8025 --token dev-token \\
        --log var/provider.jsonl

POST /messages with `Authorization: Bearer <--token>` (401 otherwise) and a JSON message answers
201 {"id": "msg-<n>"} and records it; the same Idempotency-Key again answers 409 {"id": <the
first one's>} and records nothing; a message it cannot send (no E.164 "to", no "from", no body, an
SMS body over 1600 characters) answers 400 {"error": "..."}. Each recorded message is one JSON
line in --log: path, the headers that matter (whether Authorization came, not its value) and body.

Control endpoints, for tests (no token; the fake listens on this machine only):
    GET  /_messages                     the recorded messages, oldest first
    POST /_mode {"fail": N, "status": 500}   the next N messages are answered that status
    POST /_mode {"status": 503, "forever": true}   every message is, until reset
    POST /_mode {"delay": 2.5}          messages are recorded, then answered that many seconds late
    POST /_mode {"hang": true}          messages are neither read nor answered until reset; then
                                        their connection is closed, nothing recorded
    POST /_mode {"reset": true}         back to normal (what was delayed or hung is let go)

Stdlib only, no project imports: it runs as its own process, and no service imports it."""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

SMS_LIMIT = 1600  # characters of one SMS body, as common providers cap a concatenated message
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Provider:
    """What the fake knows: the messages it took, by Idempotency-Key, and how it must misbehave."""

    def __init__(self, token: str, log: TextIO | None) -> None:
        self.token, self.log = token, log
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.ids: dict[str, str] = {}
        self.released = threading.Event()
        self.set_mode({"reset": True})

    def set_mode(self, mode: dict[str, Any]) -> None:
        with self.lock:
            if mode.get("reset"):
                self.released.set()  # lets go of every request delayed or hung until now
                self.released = threading.Event()
                self.fail, self.status, self.forever = 0, 500, False
                self.delay, self.hang = 0.0, False
            self.status = int(mode.get("status", self.status))
            self.fail = int(mode.get("fail", self.fail))
            self.forever = bool(mode.get("forever", self.forever))
            self.delay = float(mode.get("delay", self.delay))
            self.hang = bool(mode.get("hang", self.hang))

    def failure(self) -> int | None:
        """The status this request must fail with, if it must."""
        with self.lock:
            if self.forever:
                return self.status
            if self.fail > 0:
                self.fail -= 1
                return self.status
            return None

    def take(self, key: str | None, path: str, headers: dict[str, Any],
             body: dict[str, Any]) -> tuple[int, str]:
        """Record a message unless its key was seen: (201 or 409, its id)."""
        with self.lock:
            if key and key in self.ids:
                return 409, self.ids[key]
            message_id = f"msg-{len(self.messages) + 1}"
            if key:
                self.ids[key] = message_id
            self.messages.append({"id": message_id, "idempotency_key": key, "path": path,
                                  "body": body})
            if self.log:
                print(json.dumps({"id": message_id, "path": path, "headers": headers,
                                  "body": body}, ensure_ascii=False), file=self.log, flush=True)
            return 201, message_id


def invalid(body: Any) -> str | None:
    """Why the fake would not send this message, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not E164.fullmatch(str(body.get("to", ""))):
        return f"'to' must be an E.164 number, not {body.get('to')!r}"
    if not str(body.get("from") or "").strip():
        return "'from' is required"
    if body.get("type") == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not template.get("name"):
            return "'template' must name an approved template"
        return None
    if not isinstance(body.get("body"), str) or not body["body"]:
        return "'body' is required"
    if len(body["body"]) > SMS_LIMIT:
        return f"'body' exceeds {SMS_LIMIT} characters"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a client's pooled connections expect
    timeout = 30  # an idle kept-alive connection is closed after this many seconds
    provider: Provider  # set on the subclass main() builds

    def do_GET(self) -> None:
        if self.path == "/_messages":
            with self.provider.lock:
                self.answer(200, list(self.provider.messages))
        else:
            self.answer(404, {"error": f"no {self.path} here"})

    def do_POST(self) -> None:
        if self.path == "/_mode":
            self.provider.set_mode(self.read_json() or {})
            self.answer(200, {"ok": True})
        elif self.path == "/messages":
            self.message()
        else:
            self.read_body()
            self.answer(404, {"error": f"no {self.path} here"})

    def message(self) -> None:
        provider = self.provider
        with provider.lock:
            hang, delay, released = provider.hang, provider.delay, provider.released
        if hang:
            released.wait()
            self.close_connection = True  # the client gave up long ago; nothing is recorded
            return
        body = self.read_json()
        if self.headers.get("Authorization") != f"Bearer {provider.token}":
            self.answer(401, {"error": "invalid or missing bearer token"})
            return
        status = provider.failure()
        if status is not None:
            self.answer(status, {"error": f"forced {status} by /_mode"})
            return
        reason = invalid(body)
        if reason:
            self.answer(400, {"error": reason})
            return
        key = self.headers.get("Idempotency-Key")
        headers = {"Idempotency-Key": key, "Content-Type": self.headers.get("Content-Type"),
                   "Authorization": "Authorization" in self.headers}
        code, message_id = provider.take(key, self.path, headers, body)
        if delay:
            released.wait(delay)  # taken, but answered late: the client may have given up
        self.answer(code, {"id": message_id})

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def read_json(self) -> Any:
        try:
            return json.loads(self.read_body() or b"null")
        except ValueError:
            return None

    def answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client left (it timed out on a delayed answer)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--token", required=True, help="the bearer token API calls must carry")
    parser.add_argument("--log", type=Path, help="append each recorded message to FILE, as JSON")
    args: Any = parser.parse_args(argv)
    log = args.log.open("a", encoding="utf-8") if args.log else None
    handler = type("ProviderHandler", (Handler,), {"provider": Provider(args.token, log)})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"fake provider on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
