"""The world notifications and billing talk to, on this machine, for `make run`: the SMTP sink
(mail lands in var/mail as .eml files), the fake SMS and WhatsApp provider, the push service, a
municipal system's webhook receiver, and the card payment gateway. Each is its own process;
`stop` ends them all."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.notifications.webpush import generate_private_key
from shared.chassis.auth import mint_token
from shared.chassis.secrets import PAYMENTS_DEVELOPMENT_SECRET, PROVIDER_DEVELOPMENT_TOKEN

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
VAR = ROOT / "var"
PORTS = {"smtp": 2525, "provider": 8025, "push": 8089, "webhook": 8099, "payments": 8030}
WEBHOOK_URL = f"http://127.0.0.1:{PORTS['webhook']}/hook"


def notification_env() -> dict[str, str]:
    """Notifications' settings for the stand-ins (the environment may override each)."""
    key = VAR / "vapid.pem"
    if not key.exists():  # one key for good: browsers that subscribed keep working
        VAR.mkdir(exist_ok=True)
        key.write_text(generate_private_key())
    provider = f"http://127.0.0.1:{PORTS['provider']}"
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(PORTS["smtp"]),
            "SMTP_FROM": "Avisos del municipio <avisos@expediente.localhost>",
            "SMS_API_URL": provider, "SMS_API_TOKEN": PROVIDER_DEVELOPMENT_TOKEN,
            "SMS_SENDER": "+524420000070",
            "WHATSAPP_API_URL": provider, "WHATSAPP_API_TOKEN": PROVIDER_DEVELOPMENT_TOKEN,
            "WHATSAPP_SENDER": "+524420000070",
            "VAPID_PRIVATE_KEY": key.read_text(), "PUSH_ALLOW_HTTP": "true",
            "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}


def payments_env() -> dict[str, str]:
    """Billing's settings for the local card gateway (the environment may override each)."""
    return {"PAYMENTS_URL": f"http://127.0.0.1:{PORTS['payments']}",
            "PAYMENTS_SECRET": PAYMENTS_DEVELOPMENT_SECRET}


def _start(script: str, *options: str, port: int) -> subprocess.Popen[bytes]:
    log = (VAR / f"{Path(script).stem}.log").open("ab")
    process = subprocess.Popen([sys.executable, str(LOCAL / script), "--host", "127.0.0.1",
                                "--port", str(port), *options], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return process


def start() -> list[subprocess.Popen[bytes]]:
    VAR.mkdir(exist_ok=True)
    return [_start("smtp_sink.py", "--maildir", str(VAR / "mail"), port=PORTS["smtp"]),
            _start("fake_provider.py", "--token", PROVIDER_DEVELOPMENT_TOKEN, "--log",
                   str(VAR / "provider.jsonl"), port=PORTS["provider"]),
            _start("push_endpoint.py", "--log", str(VAR / "push.jsonl"), port=PORTS["push"]),
            _start("fake_payments.py", "--secret", PAYMENTS_DEVELOPMENT_SECRET, "--log",
                   str(VAR / "payments.jsonl"), port=PORTS["payments"])]


def start_webhook_receiver(notifications_url: str) -> subprocess.Popen[bytes] | None:
    """A municipal system of the demo: its webhook registered (or its secret rotated, so this
    process knows one that signs), and the receiver that verifies each delivery started."""
    headers = {"Authorization": f"Bearer {mint_token('demo-system', ('system',))}",
               "Content-Type": "application/json"}
    try:
        hooks = _call(f"{notifications_url}/webhooks", headers)["webhooks"]
        hook = next((h for h in hooks if h["url"] == WEBHOOK_URL), None)
        if hook is None:
            hook = _call(f"{notifications_url}/webhooks", headers,
                         {"url": WEBHOOK_URL, "types": [], "departments": []})
        else:
            hook = _call(f"{notifications_url}/webhooks/{hook['id']}/rotate", headers, {})
    except OSError as exc:
        print(f"the demo webhook could not be registered: {exc}", file=sys.stderr)
        return None
    return _start("webhook_receiver.py", "--secret", hook["secret"], "--log",
                  str(VAR / "webhooks.jsonl"), port=PORTS["webhook"])


def _call(url: str, headers: dict[str, str], body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as answer:
        found: dict = json.loads(answer.read())
        return found


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
