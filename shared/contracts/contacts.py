"""The contact handoff: intake gives a citizen's contact details to notifications, privately.

Contact details never enter a report's event stream. Intake publishes a subscription request
straight to notifications' durable queue on a private exchange (publisher confirm, mandatory), so
the details reach the only service that keeps personal data even while it is down; the queue is
declared by `shared.chassis.handoff`."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from .events import CATALOG, LANGUAGES
from .fields import Line, one_of, pattern

EXCHANGE = "expediente.private"
ROUTING_KEY = "subscription.requested"
QUEUE = "notifications.subscriptions"
CHANNELS = ("email", "sms", "whatsapp")


class ContactSchema(Schema):
    first_name = Line(100, load_default=None)
    last_name = Line(100, load_default=None)
    email = Line(254, validate=validate.Email(error="an email address, e.g. ana@example.com"),
                 load_default=None)
    phone = Line(25, validate=pattern(
        r"^\+?[0-9][0-9 \-]{6,19}$", error="a phone number, e.g. +52 442 123 4567"),
        load_default=None)
    notify_by = fields.List(one_of(CHANNELS), validate=validate.Length(max=len(CHANNELS)),
                            load_default=list)
    # The citizen's preferences: the language of the messages (Spanish unless they say), and
    # which steps they want to hear of (none named: every step citizens are told of).
    language = one_of(LANGUAGES, load_default=None)
    steps = fields.List(one_of(tuple(CATALOG)), validate=validate.Length(max=len(CATALOG)),
                        load_default=None)


class SubscriptionRequestSchema(Schema):
    """The message body on QUEUE."""

    folio = Line(40, required=True)
    access_token = Line(200, load_default=None)  # for the private link in messages
    channel = Line(32, required=True)            # where the citizen reported from
    contact = fields.Nested(ContactSchema, required=True)
    requested_at = fields.AwareDateTime(required=True)


def has_contact(contact: dict[str, Any] | None) -> bool:
    if not contact:
        return False
    return any(contact.get(key) for key in ("email", "phone"))
