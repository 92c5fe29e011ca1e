"""The channels this deployment has, built from its configuration: a channel whose settings are
empty is absent, and what is due on it waits (then parks) until an operator configures it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .channels import Channel
from .links import Links
from .mail import SmtpChannel
from .phones import SmsChannel, WhatsAppChannel
from .webhooks import WebhookSender
from .webpush import PushChannel


def flag(value: Any) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "y", "on")


def build_channels(config: Mapping[str, Any]) -> tuple[dict[str, Channel], WebhookSender, Links]:
    channels: dict[str, Channel] = {}
    if config.get("SMTP_FROM"):
        channels["email"] = SmtpChannel.from_config(config)
    if config.get("SMS_API_URL"):
        channels["sms"] = SmsChannel.from_config(config)
    if config.get("WHATSAPP_API_URL"):
        channels["whatsapp"] = WhatsAppChannel.from_config(config)
    if config.get("VAPID_PRIVATE_KEY"):
        channels["push"] = PushChannel.from_config(config)
    webhooks = WebhookSender(timeout=float(config.get("WEBHOOK_TIMEOUT") or 10),
                             allow_http=flag(config.get("WEBHOOK_ALLOW_HTTP")),
                             allow_private=flag(config.get("WEBHOOK_ALLOW_PRIVATE")))
    links = Links(str(config.get("LINK_SECRET") or ""),
                  str(config.get("PUBLIC_URL") or "http://localhost:8003"),
                  str(config.get("STATUS_PAGE_URL") or "http://localhost:8001/seguimiento"))
    return channels, webhooks, links
