"""What every channel adapter (email now; SMS, WhatsApp, web push later) takes and answers, so the
delivery log treats every provider alike: one `Delivery` in, one `Outcome` out.

A channel tells what happened to a delivery by the outcome's status, never by raising:

- "sent": the provider took the message; `provider_id` names it in the provider's records.
- "retry": the provider may take it later — a connection refused or timed out, a 4xx SMTP
  answer, a fault of our own settings that an operator can fix (a refused login). Send the same
  delivery again, with the same key, after a backoff; the delivery log bounds the attempts.
- "rejected": the provider never will — a 5xx SMTP answer for this address or this message, or
  an address that is not one. Record it and stop; retrying would only be refused again.

An exception out of `send` is a bug in how the delivery was built (a malformed opt-out address),
and goes the way of any failed handler: retried with backoff, then parked for an operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from services.notifications.messages import Message

Status = Literal["sent", "retry", "rejected"]
# What a delivery is for: a report's step, the confirmation a follower's address needs before
# anything else is sent to it, or a document (statement, receipt) billing sends. Providers that
# only take pre-approved templates (WhatsApp) pick the template by it.
Purpose = Literal["step", "confirm", "document"]


@dataclass(frozen=True)
class Attachment:
    """A file sent with the message (billing's PDF statements and receipts)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Delivery:
    """One message to one address on one channel."""

    # Stable per (event id, subscription id, channel), the same on every attempt: the idempotency
    # key a provider deduplicates by (or, over SMTP, what the Message-ID is derived from).
    key: str
    address: str  # email address or phone number
    message: Message
    language: str = "es"
    unsubscribe_url: str | None = None  # the one-click opt-out; emails announce it in headers
    purpose: Purpose = "step"
    attachment: Attachment | None = None


class Outcome(NamedTuple):
    status: Status
    provider_id: str | None = None
    detail: str = ""  # the provider's answer, for the delivery log and the operator

    @property
    def final(self) -> bool:
        """Whether this delivery is settled: sent or rejected, never to be attempted again."""
        return self.status != "retry"


def sent(provider_id: str | None, detail: str = "") -> Outcome:
    return Outcome("sent", provider_id, detail)


def retry(detail: str) -> Outcome:
    return Outcome("retry", None, detail)


def rejected(detail: str) -> Outcome:
    return Outcome("rejected", None, detail)


class Channel(Protocol):
    name: str  # "email", "sms", "whatsapp"…: the channel a subscription names

    def send(self, delivery: Delivery) -> Outcome:
        """Hand `delivery` to the provider once and tell what became of it."""
        ...
