"""The chatbot door: one provider-neutral webhook that holds a guided conversation per sender
(a mixin of IntakeService). A small adapter at the messaging provider (WhatsApp Business, an SMS
gateway, Telegram) turns its payload into this shape and sends our replies back."""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from nameko.dependency_providers import Config
from werkzeug.wrappers import Request, Response

from shared.chassis.auth import Unauthenticated
from shared.chassis.http import http, json_response, read_json
from shared.chassis.openapi import CHATBOT_SECRET, api
from shared.contracts.fields import Line, MediaUrl, Text, finite, pattern

from ..application import (
    IdempotencyKeyReused,
    IntakeApplication,
    Submission,
    SubmissionInProgress,
    UnknownService,
)
from ..catalog import CatalogError, ServiceDefinition
from ..errors import http_errors
from ..photos import refused_answer
from ..schemas import TRUSTED_MEDIA, ChatbotAnswerSchema, UploadTicketSchema
from ..store import ConversationChanged
from ..uploads import UploadPolicy, UploadRefused
from . import conversation as chatbot

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024  # one message; a larger body is a 413 before anything reads it
SAVE_ATTEMPTS = 5
IDLE_LIMIT = timedelta(hours=24)  # CHATBOT_IDLE_HOURS: a half-done conversation is dropped after
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{6,19}$")


class PointSchema(Schema):
    lat = finite(required=True, validate=validate.Range(-90, 90))
    long = finite(required=True, validate=validate.Range(-180, 180))


class WebhookSchema(Schema):
    """One inbound message (unknown fields are refused): the citizen's text is checked like
    any free text (no control characters), the sender and message ids are single lines."""

    sender = Line(100, required=True, validate=pattern(
        r"^[A-Za-z0-9_.:+@\-]{3,100}$", error="the provider's sender id, e.g. whatsapp:+52442…"))
    text = Text(2000, load_default="")
    location = fields.Nested(PointSchema, load_default=None)
    media_url = MediaUrl(TRUSTED_MEDIA, load_default=None)
    message_id = Line(200, min_length=1, load_default=None)


WEBHOOK = WebhookSchema()
SENDER_ONLY = WebhookSchema(only=("sender",))


class SenderLocks:
    """A sender's messages are handled one at a time within this process (green locks under
    nameko's eventlet), so two messages at once cannot overwrite each other's state."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, list[Any]] = {}  # sender -> [lock, how many want it]

    @contextmanager
    def hold(self, sender: str) -> Iterator[None]:
        with self._guard:
            entry = self._held.setdefault(sender, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[sender]


LOCKS = SenderLocks()


class ChatbotWebhook:
    # IntakeService's dependencies, annotated and never assigned: nameko takes no provider here.
    intake: IntakeApplication
    uploads: UploadPolicy

    config = Config()

    @http("POST", "/chatbot/webhook", max_body=MAX_BODY)
    @api(body=WEBHOOK, answers={200: ChatbotAnswerSchema}, auth=(CHATBOT_SECRET,),
         errors=(401, 409))
    @http_errors
    def chatbot_webhook(self, request: Request) -> Response:
        """One message from a citizen in, our replies out.

            curl -X POST http://localhost:8000/chatbot/webhook \\
              -H 'X-Chatbot-Secret: expediente-chatbot-dev' -H 'Content-Type: application/json' \\
              -d '{"sender": "whatsapp:+5214421234567", "text": "hay un bache",
                   "message_id": "wamid.001"}'

        Body: {"sender": "...", "text": "..." (≤ 2,000 chars), "location": {"lat": 20.59,
        "long": -100.39} (a shared location), "media_url": "https://…" (a photo),
        "message_id": "..." (the provider's id: a retry of it changes nothing)}; all but
        `sender` optional. Answers 200 {"sender": "...", "replies": ["¿Dónde está…?"]}, with
        "folio": "QRO-2026-000123" on the message that created the report;
        400 {"errors": {field: [...]}} for a bad body; 401 without the shared secret; 413 for
        a body over 16 KiB."""
        check_secret(request, self.config)
        message, sender = inbound(read_json(request))
        with LOCKS.hold(sender):
            replies, folio = converse(self.intake, sender, message, idle_limit(self.config))
        answer = {"sender": sender, "replies": replies}
        return json_response({**answer, "folio": folio} if folio else answer)

    @http("POST", "/chatbot/upload-tickets", max_body=MAX_BODY)
    @api(body=SENDER_ONLY, answers={201: UploadTicketSchema}, auth=(CHATBOT_SECRET,),
         errors=(401, 429))
    @http_errors
    def chatbot_upload_ticket(self, request: Request) -> Response:
        """The adapter's photo step: for a photo a sender sent, it asks a ticket for that
        sender, uploads the photo to POST /api/v1/photos with it (X-Upload-Ticket) and passes
        our URL on as the message's `media_url` (a provider's media links expire and need its
        credentials; ours are the re-encoded photo, without the sender's GPS position).

            curl -X POST http://localhost:8000/chatbot/upload-tickets \\
              -H 'X-Chatbot-Secret: expediente-chatbot-dev' -H 'Content-Type: application/json' \\
              -d '{"sender": "whatsapp:+5214421234567"}'

        -> 201 {"ticket": "...", "expires_at": "...", "photos": 5}. The photos count against
        the sender's hourly quota, not the adapter's address; 401 without the shared secret,
        429 (Retry-After) past UPLOAD_TICKETS_PER_HOUR tickets for that sender."""
        check_secret(request, self.config)
        sender = SENDER_ONLY.load(read_json(request))["sender"]
        try:
            ticket = self.uploads.issue(self.intake.store, sender=sender)
        except UploadRefused as refused:
            return refused_answer(refused, request)
        return json_response(ticket, 201)


def idle_limit(config: dict[str, Any]) -> timedelta:
    hours = config.get("CHATBOT_IDLE_HOURS")
    return IDLE_LIMIT if hours in (None, "") else timedelta(hours=float(hours))


def check_secret(request: Request, config: dict[str, Any]) -> None:
    expected = str(config.get("CHATBOT_SECRET") or "")
    given = request.headers.get("X-Chatbot-Secret", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("send the provider's shared secret in X-Chatbot-Secret")


def inbound(data: dict[str, Any]) -> tuple[chatbot.Inbound, str]:
    loaded = WEBHOOK.load(data)
    point = loaded["location"] or {}
    return chatbot.Inbound(text=loaded["text"], lat=point.get("lat"), long=point.get("long"),
                           media_url=loaded["media_url"],
                           message_id=loaded["message_id"]), loaded["sender"]


def converse(intake: IntakeApplication, sender: str, message: chatbot.Inbound,
             idle_limit: timedelta = IDLE_LIMIT) -> tuple[list[str], str | None]:
    """Load the sender's conversation, take one step (and its action), store it: (replies,
    folio if this message created a report). A conversation idle for longer than `idle_limit`
    starts over. If another replica moved the conversation meanwhile, the step is taken again
    on the fresh state (actions are idempotent)."""
    for attempt in range(1, SAVE_ATTEMPTS + 1):
        state, version, updated_at = intake.store.conversation(sender)
        replayed = chatbot.replay(state, message)
        if replayed is not None:
            return replayed
        expired: list[str] = []
        if updated_at is not None:
            state, expired = chatbot.expire(state, datetime.now(UTC) - updated_at, idle_limit)
        catalog = intake.catalog()
        state, replies, action = chatbot.reply(state, message, catalog)
        replies = expired + replies
        folio = None
        if action is not None and state is not None:
            state, more, folio = carry_out(intake, sender, state, action, catalog)
            replies = replies + more
        try:
            intake.store.save_conversation(
                sender, chatbot.remember(state, message, replies, folio), version)
            return replies, folio
        except ConversationChanged:
            if attempt == SAVE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def carry_out(intake: IntakeApplication, sender: str, state: chatbot.State,
              action: chatbot.Action, catalog: list[ServiceDefinition]
              ) -> tuple[chatbot.State, list[str], str | None]:
    """Do what the conversation asked for and let it answer the outcome."""
    if isinstance(action, chatbot.LookForDuplicates):
        try:
            found = intake.possible_duplicates(action.service_code, action.lat, action.long)
        except Exception:  # the offer is a courtesy: without it the citizen still reports
            log.warning("no duplicate lookup for %s", action.service_code, exc_info=True)
            found = []
        return (*chatbot.after_lookup(state, found, catalog), None)
    contact = contact_of(sender)
    if isinstance(action, chatbot.Follow):
        subscribed = False
        if contact is not None:
            try:
                intake.follow(action.folio, contact, "chatbot")
                subscribed = True
            except Exception:
                log.exception("could not subscribe a chatbot sender to %s", action.folio)
        url = f"{intake.status_url}/{action.folio}" if intake.status_url else None
        return (*chatbot.after_follow(state, url, subscribed), None)
    try:
        receipt = intake.submit(Submission(
            channel="chatbot", service_code=action.service_code, description=action.description,
            location=action.location, answers=action.answers, media_urls=action.media_urls,
            contact=contact, idempotency_key=f"chatbot:{sender}:{action.conversation_id}"))
    except SubmissionInProgress:
        return (*chatbot.submit_failed(state, "pending"), None)
    except (CatalogError, UnknownService, ValidationError, IdempotencyKeyReused) as error:
        log.warning("chatbot report refused: %s", error)
        return (*chatbot.submit_failed(state, "invalid"), None)
    except Exception:  # tracking down or slow: the citizen is told to answer "sí" again later
        log.exception("chatbot report could not be opened")
        return (*chatbot.submit_failed(state, "unavailable"), None)
    return (*chatbot.after_submit(state, receipt), receipt["folio"])


def contact_of(sender: str) -> dict[str, Any] | None:
    """The sender's phone, to be told of every step on the same channel ("whatsapp:+52…")."""
    kind, _, address = sender.rpartition(":")
    if not PHONE.match(address):
        return None
    return {"phone": address, "notify_by": ["sms" if kind == "sms" else "whatsapp"]}
