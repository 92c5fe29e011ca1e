"""A running system with notifications: tests/stack.py's tracking, intake and crews, plus
notifications as a real `nameko run` process, and the local stand-ins for the world it talks to,
each its own process on a free port: the SMTP sink (deploy/local/smtp_sink.py), the fake SMS and
WhatsApp provider (fake_provider.py) and the push service (push_endpoint.py)."""

from __future__ import annotations

import email
import json
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests

from services.notifications.webpush import generate_private_key
from tests.conftest import unique
from tests.stack import Stack, pg_connect
from tests.support import LocalServer, ServiceProcess

PROVIDER_TOKEN = "expediente-fake-provider"


class NotificationsStack(Stack):
    """The Stack plus notifications, its sink, fake provider and push endpoint. Retries are fast
    (DELIVERY_BACKOFF_SECONDS 0.2, three attempts, a 3 s lease) and there are no quiet hours, so a
    test sees a parked delivery or a taken-over lease in seconds."""

    def __init__(self, workdir: Path, notify_env: dict[str, str] | None = None,
                 store: str | None = None) -> None:
        super().__init__(workdir, store=store)
        self.mail_dir = workdir / "mail"
        self.sink = LocalServer(workdir, "smtp_sink.py", "--maildir", str(self.mail_dir))
        self.provider = LocalServer(workdir, "fake_provider.py", "--token", PROVIDER_TOKEN,
                                    "--log", str(workdir / "provider.jsonl"))
        self.push = LocalServer(workdir, "push_endpoint.py", "--log",
                                str(workdir / "push.jsonl"))
        self.notify_schema = unique("e2e_notifications")
        env = {**self.env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.sink.port),
               "SMTP_FROM": "Avisos <avisos@example.gob.mx>",
               "SMS_API_URL": self.provider.url, "SMS_API_TOKEN": PROVIDER_TOKEN,
               "SMS_SENDER": "+524420000000",
               "WHATSAPP_API_URL": self.provider.url, "WHATSAPP_API_TOKEN": PROVIDER_TOKEN,
               "WHATSAPP_SENDER": "+524420000001",
               "VAPID_PRIVATE_KEY": generate_private_key(), "PUSH_ALLOW_HTTP": "true",
               "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true",
               "QUIET_HOURS": "", "DELIVERY_BACKOFF_SECONDS": "0.2",
               "DELIVERY_BACKOFF_MAX_SECONDS": "0.5", "DELIVERY_MAX_ATTEMPTS": "3",
               "DELIVERY_LEASE_SECONDS": "3", "DELIVERY_POLL_SECONDS": "0.2",
               "SMTP_TIMEOUT": "2", "SMS_TIMEOUT": "1", "WHATSAPP_TIMEOUT": "1",
               "PUSH_TIMEOUT": "2", "WEBHOOK_TIMEOUT": "2", **(notify_env or {})}
        if self.store == "sqlite":
            env["NOTIFICATIONS_SQLITE_DBNAME"] = str(workdir / "notifications.sqlite")
        else:
            env["NOTIFICATIONS_POSTGRES_DBNAME"] = env.get("TRACKING_POSTGRES_DBNAME", "test")
            env["NOTIFICATIONS_POSTGRES_SCHEMA"] = self.notify_schema
            with pg_connect() as conn:
                conn.execute(f"CREATE SCHEMA {self.notify_schema}")
        self.schemas["notifications"] = self.notify_schema
        self.notifications = ServiceProcess("notifications", env)
        self.notifications.env["STATUS_PAGE_URL"] = f"{self.tracking.url}/seguimiento"
        self.notifications.env["NOTIFICATIONS_PUBLIC_URL"] = self.notifications.url
        self.tracking.env["NOTIFICATIONS_URL"] = self.notifications.url

    def start(self) -> NotificationsStack:
        try:
            for server in (self.sink, self.provider, self.push):
                server.start()
            super().start()
            self.notifications.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.notifications.stop()
        for server in (self.sink, self.provider, self.push):
            server.stop()
        super().stop()  # drops every schema in self.schemas, notifications' too

    # ---- what the world received ------------------------------------------------------------

    def emails(self) -> list[EmailMessage]:
        if not self.mail_dir.exists():
            return []
        found = []
        # The sink names each file <n>-<hash>.eml, n counting up: the order they came in.
        paths = sorted(self.mail_dir.glob("*.eml"), key=lambda p: int(p.name.split("-")[0]))
        for path in paths:
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found

    def phone_messages(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.provider.url}/_messages", timeout=5)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def provider_mode(self, **mode: Any) -> None:
        requests.post(f"{self.provider.url}/_mode", json=mode, timeout=5).raise_for_status()

    def new_push_subscription(self) -> dict[str, Any]:
        answer = requests.post(f"{self.push.url}/_subscribe", json={}, timeout=5)
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    def pushes(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.push.url}/_received", timeout=5)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def deliveries(self, **where: str) -> list[dict[str, Any]]:
        clause = " AND ".join(f"{column} = ?" for column in where) or "1 = 1"
        rows = self.query("notifications", f"SELECT key, channel, purpose, status, attempts, "
                          f"detail, folio FROM deliveries WHERE {clause}", tuple(where.values()))
        names = ("key", "channel", "purpose", "status", "attempts", "detail", "folio")
        return [dict(zip(names, row, strict=True)) for row in rows]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def as_json(response: requests.Response) -> Any:
    return json.loads(response.text)
