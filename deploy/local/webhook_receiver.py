"""A local webhook endpoint for development and tests: it verifies each POST's Standard Webhooks
signature itself, as a municipal system would, records it, and answers.

    python deploy/local/webhook_receiver.py --host 127.0.0.1 --port 8099 \\
        --secret whsec_... --log var/webhooks.jsonl

Each POST is recorded as one JSON line (in --log, and on standard output): its webhook-id,
webhook-timestamp and webhook-signature headers, its body, and whether the signature verified
with one of the --secret values (repeatable, as during a rotation) and the timestamp is within
5 minutes of now. The answer is 204 when it verified, 401 otherwise; `--fail-first N` answers
500 to the first N requests instead, to show the sender retrying. GET /_received lists what was
recorded, as a JSON array. Standard library only: it imports nothing of the project."""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE = 5 * 60  # seconds a signed timestamp may differ from our clock
MAX_BODY = 1024 * 1024


def verified(secrets: list[bytes], headers: Any, body: bytes) -> bool:
    """Whether one of the request's signatures is ours, for a message signed within 5 minutes."""
    message_id = headers.get("webhook-id") or ""
    timestamp = headers.get("webhook-timestamp") or ""
    signatures = (headers.get("webhook-signature") or "").split()
    if not (message_id and timestamp.isdigit() and signatures):
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = ["v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()
                for key in secrets]
    return any(hmac.compare_digest(mine.encode(), theirs.encode())
               for mine in expected for theirs in signatures)


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], secrets: list[bytes], fail_first: int,
                 log: str | None) -> None:
        super().__init__(address, Handler)
        self.secrets, self.failures_left, self.log = secrets, fail_first, log
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> int:
        """Keeps `entry` and tells the status to answer it with."""
        with self.lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                status = 500
            else:
                status = 204 if entry["verified"] else 401
            entry["answer"] = status
            self.received.append(entry)
            line = json.dumps(entry, ensure_ascii=False)
            if self.log:
                with open(self.log, "a", encoding="utf-8") as log:
                    log.write(line + "\n")
            print(line, flush=True)
        return status


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        if not (length.isdigit() and int(length) <= MAX_BODY):
            self._answer(413)
            return
        body = self.rfile.read(int(length))
        entry: dict[str, Any] = {
            name: self.headers.get(name)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        entry.update(path=self.path, host=self.headers.get("Host"),
                     content_type=self.headers.get("Content-Type"),
                     user_agent=self.headers.get("User-Agent"),
                     body=body.decode("utf-8", "replace"),
                     verified=verified(self.server.secrets, self.headers, body))
        self._answer(self.server.record(entry))

    def do_GET(self) -> None:
        if self.path != "/_received":
            self._answer(404)
            return
        with self.server.lock:
            listing = json.dumps(self.server.received, ensure_ascii=False).encode()
        self._answer(200, listing, "application/json")

    def _answer(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # each POST is printed as its JSON line instead


def key(secret: str) -> bytes:
    try:
        decoded = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not (secret.startswith("whsec_") and decoded):
        raise argparse.ArgumentTypeError("a secret is whsec_ followed by base64")
    return decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--secret", type=key, action="append", required=True,
                        metavar="whsec_...", help="a secret to verify with (repeatable)")
    parser.add_argument("--log", metavar="FILE", help="append each request as a JSON line")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer 500 to the first N requests")
    args = parser.parse_args(argv)
    server = Receiver((args.host, args.port), args.secret, args.fail_first, args.log)
    print(f"webhook receiver on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
