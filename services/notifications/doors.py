"""Notifications' doors (mixins of NotificationsService): the two consumers; the citizen's
confirmation, opt-out and browser push; municipal systems' webhooks; the operator's delivery log,
replay and erasure; and billing's documents."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from werkzeug.wrappers import Request, Response

from shared.chassis import health
from shared.chassis.answers import json_response, read_json
from shared.chassis.auth import Forbidden, Principal, WorkerAuth
from shared.chassis.consumer import cloud_event_handler
from shared.chassis.handoff import handoff_handler
from shared.chassis.http import http
from shared.chassis.openapi import BEARER, api
from shared.chassis.rpc import rpc
from shared.chassis.rpcclient import RemoteService
from shared.chassis.sqlstore import SqlStore, Tx
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.contacts import ContactSchema
from shared.contracts.events import CATALOG, TYPE_PREFIX
from shared.contracts.fields import Line, Text, one_of, pattern

from . import deliveries as log_
from . import hooks, routing
from .errors import ERRORS, html_errors, http_errors
from .links import BadLink
from .live import Hub, last_event_id, stream
from .pages import HTML, page
from .phones import BadPhone, phone
from .sender import Notices
from .webhooks import RefusedUrl, check_url
from .webpush import check_subscription

CONSUMER_NAME = "notifications.consume_report_event"
WEBHOOK_OWNERS = ("system",)  # and admin
DOCUMENT_SENDERS = ("system", "billing_clerk")  # and not admin: a citizen's receipt is billing's
EVENT_TYPES = tuple(entry.type for entry in CATALOG.values())
FOLIO = r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{4,9}$"
HOOK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024


class NewWebhook(Schema):
    url = Line(2000, required=True)
    types = fields.List(one_of(EVENT_TYPES), validate=validate.Length(max=len(EVENT_TYPES)),
                        load_default=list)
    departments = fields.List(Line(64, validate=validate.Length(min=1)),
                              validate=validate.Length(max=50), load_default=list)


class WebhookAnswer(Schema):
    id = fields.String(required=True)
    owner = fields.String(required=True)
    url = fields.String(required=True)
    types = fields.List(fields.String(), required=True)
    departments = fields.List(fields.String(), required=True)
    status = fields.String(required=True)
    created_at = fields.String(required=True)
    secrets_valid = fields.Integer(required=True)
    secret = fields.String()  # only when it is new: registration and rotation


class WebhooksAnswer(Schema):
    webhooks = fields.List(fields.Nested(WebhookAnswer), required=True)


class Attempt(Schema):
    attempt = fields.Integer(required=True)
    at = fields.String(required=True)
    status = fields.String(required=True)
    detail = fields.String(required=True)


class DeliveryAnswer(Schema):
    key = fields.String(required=True)
    event_id = fields.String(allow_none=True)
    folio = fields.String(allow_none=True)
    subscription_id = fields.String(allow_none=True)
    webhook_id = fields.String(allow_none=True)
    channel = fields.String(required=True)
    purpose = fields.String(required=True)
    status = fields.String(required=True)
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.String(required=True)
    provider_id = fields.String(allow_none=True)
    detail = fields.String(required=True)
    event_time = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    settled_at = fields.String(allow_none=True)
    attempts_made = fields.List(fields.Nested(Attempt), required=True)


class DeliveriesAnswer(Schema):
    deliveries = fields.List(fields.Nested(DeliveryAnswer), required=True)


class DeliveriesQuery(Schema):
    status = one_of(("pending", "sending", "sent", "rejected", "parked", "cancelled"),
                    load_default=None)
    channel = one_of(log_.CHANNELS, load_default=None)
    folio = Line(40, load_default=None)
    limit = fields.Integer(validate=validate.Range(1, 500), load_default=100)
    offset = fields.Integer(validate=validate.Range(0, 10_000_000), load_default=0)


class ReplayBody(Schema):
    keys = fields.List(Line(64, validate=validate.Length(min=1)),
                       validate=validate.Length(max=1000), load_default=None)
    channel = one_of(log_.CHANNELS, load_default=None)


class ReplayAnswer(Schema):
    replayed = fields.Integer(required=True)


class ErasureBody(Schema):
    folio = Line(40, load_default=None)
    email = ContactSchema().fields["email"]
    phone = ContactSchema().fields["phone"]

    @validates_schema
    def one_criterion(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [key for key in ("folio", "email", "phone") if data.get(key)]
        if len(given) != 1:
            raise ValidationError("give exactly one of folio, email or phone", "_schema")


class ErasureAnswer(Schema):
    criterion = fields.String(required=True)
    subscriptions_erased = fields.Integer(required=True)


class LiveQuery(Schema):
    after = Line(12, load_default=None, validate=pattern(r"^[0-9]{1,9}$",
                                                         error="a stream version, e.g. 3"))


class PushBody(Schema):
    subscription = fields.Dict(required=True)
    language = one_of(("es", "en"), load_default="es")


class PushAnswer(Schema):
    folio = fields.String(required=True)
    subscribed = fields.Boolean(required=True)


class KeyAnswer(Schema):
    key = fields.String(allow_none=True)


class DocumentSchema(Schema):
    """billing's `send_document`: one PDF to one citizen, once per `reference`."""

    reference = Line(100, required=True, validate=validate.Length(min=1))
    channel = one_of(("email", "whatsapp"), required=True)
    email = ContactSchema().fields["email"]
    phone = ContactSchema().fields["phone"]
    language = one_of(("es", "en"), load_default="es")
    subject = Line(200, required=True, validate=validate.Length(min=1))
    text = Text(4000, min_length=1, required=True)
    filename = Line(100, required=True, validate=pattern(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.pdf$", error="a file name such as recibo-123.pdf"))
    content_type = one_of(("application/pdf",), load_default="application/pdf")
    data = fields.String(required=True, validate=validate.Length(min=1, max=MAX_DOCUMENT_BYTES
                                                                 * 4 // 3 + 4))

    @validates_schema
    def has_address(self, data: dict[str, Any], **kwargs: Any) -> None:
        needed = "email" if data.get("channel") == "email" else "phone"
        if not data.get(needed):
            raise ValidationError(f"{data.get('channel')} needs {needed}", needed)


NEW_WEBHOOK = NewWebhook()
DELIVERIES_QUERY = DeliveriesQuery()
REPLAY = ReplayBody()
ERASURE = ErasureBody()
PUSH = PushBody()
LIVE_QUERY = LiveQuery()
DOCUMENT = DocumentSchema()


def _pdf(text: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError({"data": ["the document, base64-encoded"]}) from None
    if len(data) > MAX_DOCUMENT_BYTES or not data.startswith(b"%PDF-"):
        raise ValidationError({"data": ["a PDF of at most 5 MiB"]})
    return data


class Consumers:
    """The report events' consumer (each report's events in order, once) and the contact
    handoff's."""

    notices: Notices
    store: SqlStore
    tracking: RemoteService

    @cloud_event_handler(f"{TYPE_PREFIX}*", store="store", catch_up="fetch_report_events",
                         batch=20)
    def consume_report_event(self, events: list[CloudEvent], tx: Tx) -> None:
        for event in events:
            routing.decide(tx, event, self.notices)

    def fetch_report_events(self, folio: str, after_version: int) -> list[dict[str, Any]]:
        """A report's events after a version, from tracking (the consumer found a gap)."""
        events: list[dict[str, Any]] = self.tracking.call("report_events", folio, after_version)
        return events

    @handoff_handler(store="store")
    def consume_subscription_request(self, request: dict[str, Any], consumer: str) -> bool:
        with self.store.transaction() as tx:
            routing.take_request(tx, request, self.notices, _phone_or_none)
        return True


def _phone_or_none(text: str) -> str | None:
    try:
        return phone(text)
    except BadPhone:
        return None


class CitizenDoors:
    """/confirmar, /baja (the links in every message) and the status page's "avísame"."""

    notices: Notices
    store: SqlStore

    @http("GET", "/confirmar/<string:token>", html=True)
    @api(answers={200: HTML, 404: HTML})
    @html_errors
    def confirm_page(self, request: Request, token: str) -> Response:
        """The confirmation link of a follower's first message: a page with one button (a mail
        scanner that opens links confirms nothing)."""
        subscription = self._subscription("confirm", token)
        return page("confirm.html", folio=subscription.folio, done=False,
                    status=subscription.status)

    @http("POST", "/confirmar/<string:token>", html=True, max_body=1024)
    @api(answers={200: HTML, 404: HTML})
    @html_errors
    def confirm(self, request: Request, token: str) -> Response:
        subscription_id = self.notices.links.subscription_of("confirm", token)
        with self.store.transaction() as tx:
            subscription = routing.confirmed(tx, subscription_id)
        if subscription is None:
            raise BadLink("this subscription no longer exists")
        return page("confirm.html", folio=subscription.folio, done=True,
                    status=subscription.status)

    @http("GET", "/baja/<string:token>", html=True)
    @api(answers={200: HTML, 404: HTML})
    @html_errors
    def opt_out_page(self, request: Request, token: str) -> Response:
        """The opt-out link of every message: a page with one button."""
        subscription = self._subscription("opt-out", token)
        return page("opt_out.html", folio=subscription.folio, done=False,
                    status=subscription.status)

    @http("POST", "/baja/<string:token>", html=True, max_body=1024)
    @api(answers={200: HTML, 404: HTML})
    @html_errors
    def opt_out(self, request: Request, token: str) -> Response:
        """One click (RFC 8058: mail clients POST `List-Unsubscribe=One-Click` here): no more
        messages, and the address is forgotten."""
        subscription_id = self.notices.links.subscription_of("opt-out", token)
        with self.store.transaction() as tx:
            found = log_.subscription(tx, subscription_id)
            if found is None:
                raise BadLink("this subscription no longer exists")
            log_.end(tx, subscription_id)
        return page("opt_out.html", folio=found.folio, done=True, status="opted_out")

    @http("GET", "/push/key")
    @api(answers={200: KeyAnswer})
    @http_errors
    def push_key(self, request: Request) -> Response:
        """GET /push/key -> {"key": the VAPID applicationServerKey} (null: no web push here)"""
        return _cors(json_response({"key": self.notices.push_public_key}), self.notices)

    @http("POST", "/reports/<string:folio>/push", max_body=4 * 1024)
    @api(body=PUSH, answers={201: PushAnswer, 200: PushAnswer})
    @http_errors
    def push_subscribe(self, request: Request, folio: str) -> Response:
        """POST /reports/QRO-2026-000123/push {"subscription": the browser's PushSubscription}
        -> 201: this browser is told of each step of the folio (the status page's "avísame").
        A browser's subscription names only itself, so it needs no confirmation."""
        folio = _folio(folio)
        data = PUSH.load(read_json(request))  # text/plain too: no CORS preflight for it
        channel = self.notices.channels.get("push")
        try:
            subscription = check_subscription(
                data["subscription"], allow_http=bool(getattr(channel, "allow_http", False)))
        except ValueError as exc:
            raise ValidationError({"subscription": [str(exc)]}) from None
        with self.store.transaction() as tx:
            _, created = log_.subscribe(tx, folio, "push",
                                        json.dumps(subscription, sort_keys=True),
                                        language=data["language"], role="browser")
        return _cors(json_response({"folio": folio, "subscribed": True}, 201 if created else 200),
                     self.notices)

    def _subscription(self, purpose: str, token: str) -> log_.Subscription:
        subscription_id = self.notices.links.subscription_of(purpose, token)
        with self.store.transaction() as tx:
            found = log_.subscription(tx, subscription_id)
        if found is None:
            raise BadLink("this subscription no longer exists")
        return found


def _folio(folio: str) -> str:
    folio = folio.strip().upper()
    if not re.match(FOLIO, folio):
        raise ValidationError({"folio": ["a folio such as QRO-2026-000123"]})
    return folio


def _cors(response: Response, notices: Notices) -> Response:
    """The status page (tracking's origin) calls these doors from the citizen's browser."""
    response.headers["Access-Control-Allow-Origin"] = notices.status_origin
    response.headers["Vary"] = "Origin"
    return response


class LiveDoors:
    """/live/{folio}: the status page's stream of steps (Server-Sent Events)."""

    notices: Notices
    store: SqlStore
    live: Hub

    @http("GET", "/live/<string:folio>")
    @api(query=LiveQuery, answers={200: {"text/event-stream": None}})
    @http_errors
    def live_stream(self, request: Request, folio: str) -> Response:
        """GET /live/QRO-2026-000123?after=3 -> text/event-stream: each public step after
        version 3 as `id: <version>`, `event: step`, `data: {"step", "label", "time", "data"}`;
        a reconnecting browser resumes after its Last-Event-ID."""
        folio = _folio(folio)
        query = LIVE_QUERY.load(request.args.to_dict())
        after = last_event_id(request.headers.get("Last-Event-ID"), query["after"])
        # eventlet's server gathers 4 KiB before it writes; a step is written as it happens.
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        response = Response(stream(self.live, self.store, folio, after),
                            mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # a proxy must pass each event at once
        return _cors(response, self.notices)


class WebhookDoors:
    """/webhooks: a municipal system's endpoints (role system; an admin sees all)."""

    notices: Notices
    store: SqlStore
    auth: WorkerAuth

    @http("POST", "/webhooks", max_body=8 * 1024)
    @api(body=NEW_WEBHOOK, answers={201: WebhookAnswer}, auth=(BEARER,))
    @http_errors
    def register_webhook(self, request: Request) -> Response:
        """POST /webhooks {"url": "https://…", "types": ["mx.expediente.report.closed"],
        "departments": ["obras_publicas"]} -> 201 the webhook with its signing `secret` (shown
        once). A URL that resolves to a loopback, link-local or private address is refused."""
        principal = self.auth.require(*WEBHOOK_OWNERS)
        data = NEW_WEBHOOK.load(read_json(request))
        url = self._url(data["url"])
        with self.store.transaction() as tx:
            hook = hooks.register(tx, principal.subject, url, data["types"], data["departments"])
        return json_response(hook, 201)

    @http("GET", "/webhooks")
    @api(answers={200: WebhooksAnswer}, auth=(BEARER,))
    @http_errors
    def list_webhooks(self, request: Request) -> Response:
        """GET /webhooks -> the caller's webhooks (an admin's: all)"""
        principal = self.auth.require(*WEBHOOK_OWNERS)
        return json_response({"webhooks": hooks.listing(self.store, _owner(principal))})

    @http("GET", "/webhooks/<string:hook_id>")
    @api(answers={200: WebhookAnswer}, auth=(BEARER,))
    @http_errors
    def get_webhook(self, request: Request, hook_id: str) -> Response:
        principal = self.auth.require(*WEBHOOK_OWNERS)
        hook_id = _hook_id(hook_id)
        with self.store.transaction() as tx:
            return json_response(hooks.get(tx, hook_id, owner=_owner(principal)))

    @http("POST", "/webhooks/<string:hook_id>/rotate", max_body=1024)
    @api(answers={200: WebhookAnswer}, auth=(BEARER,))
    @http_errors
    def rotate_webhook_secret(self, request: Request, hook_id: str) -> Response:
        """POST /webhooks/{id}/rotate -> the webhook with a new `secret`; deliveries are signed
        with the new and the old one for 24 hours, then with the new one only."""
        principal = self.auth.require(*WEBHOOK_OWNERS)
        hook_id = _hook_id(hook_id)
        with self.store.transaction() as tx:
            return json_response(hooks.rotate(tx, hook_id, _owner(principal)))

    @http("DELETE", "/webhooks/<string:hook_id>")
    @api(answers={204: None}, auth=(BEARER,))
    @http_errors
    def delete_webhook(self, request: Request, hook_id: str) -> Response:
        principal = self.auth.require(*WEBHOOK_OWNERS)
        hook_id = _hook_id(hook_id)
        with self.store.transaction() as tx:
            hooks.delete(tx, hook_id, _owner(principal))
        return Response(status=204)

    @http("GET", "/webhooks/<string:hook_id>/deliveries")
    @api(query=DeliveriesQuery, answers={200: DeliveriesAnswer}, auth=(BEARER,))
    @http_errors
    def webhook_deliveries(self, request: Request, hook_id: str) -> Response:
        """GET /webhooks/{id}/deliveries?status=parked -> each delivery and its attempts"""
        principal = self.auth.require(*WEBHOOK_OWNERS)
        hook_id = _hook_id(hook_id)
        query = DELIVERIES_QUERY.load(request.args.to_dict())
        with self.store.transaction() as tx:
            hooks.get(tx, hook_id, owner=_owner(principal))
        return json_response({"deliveries": log_.listing(
            self.store, status=query["status"], webhook_id=hook_id, limit=query["limit"],
            offset=query["offset"])})

    def _url(self, url: str) -> str:
        try:
            return check_url(url, allow_http=self.notices.webhooks.allow_http,
                             allow_private=self.notices.webhooks.allow_private)
        except RefusedUrl as exc:
            raise ValidationError({"url": [str(exc)]}) from None


def _hook_id(hook_id: str) -> str:
    """A webhook's id as registration made it (a UUID); anything else names no webhook."""
    if not HOOK_ID.fullmatch(hook_id):
        raise hooks.WebhookNotFound("no such webhook")
    return hook_id


def _owner(principal: Principal) -> str | None:
    return None if "admin" in principal.roles else principal.subject


class OperatorDoors:
    """The delivery log for admins, replay of what was parked, erasure of a citizen's data, and
    billing's documents."""

    notices: Notices
    store: SqlStore
    auth: WorkerAuth

    @http("GET", "/deliveries")
    @api(query=DeliveriesQuery, answers={200: DeliveriesAnswer}, auth=(BEARER,))
    @http_errors
    def list_deliveries(self, request: Request) -> Response:
        """GET /deliveries?status=parked&channel=sms -> deliveries, newest first, with their
        attempts (admin)"""
        self.auth.require("admin")
        query = DELIVERIES_QUERY.load(request.args.to_dict())
        return json_response({"deliveries": log_.listing(self.store, **query)})

    @http("POST", "/deliveries/replay", max_body=128 * 1024)
    @api(body=REPLAY, answers={200: ReplayAnswer}, auth=(BEARER,))
    @http_errors
    def replay_deliveries_http(self, request: Request) -> Response:
        """POST /deliveries/replay {"channel": "webhook"} or {"keys": [...]} or {} (all) ->
        {"replayed": n}: parked deliveries get a fresh round of attempts (admin)"""
        self.auth.require("admin")
        return json_response({"replayed": self._replay(REPLAY.load(read_json(request)))})

    @rpc(errors=ERRORS)
    def replay_deliveries(self, options: dict[str, Any] | None = None) -> dict[str, int]:
        """`expediente call notifications replay_deliveries '{"channel": "sms"}' --role
        admin`: parked deliveries (all, a channel's, or these keys) are sent again."""
        self.auth.require("admin")
        return {"replayed": self._replay(REPLAY.load({} if options is None else options))}

    def _replay(self, options: dict[str, Any]) -> int:
        with self.store.transaction() as tx:
            replayed = log_.replay(tx, options["keys"], options["channel"])
            tx.after_commit(self.notices.wake)
        return replayed

    @http("POST", "/erasures", max_body=4 * 1024)
    @api(body=ERASURE, answers={200: ErasureAnswer}, auth=(BEARER,))
    @http_errors
    def erase_http(self, request: Request) -> Response:
        """POST /erasures {"email": "ana@example.com"} (or "phone", or "folio") -> every
        subscription with it erased, its pending messages cancelled; what is recorded is that
        an erasure happened, by whom and by which criterion, never the value (admin)"""
        principal = self.auth.require("admin")
        return json_response(self._erase(ERASURE.load(read_json(request)), principal))

    @rpc(errors=ERRORS)
    def erase(self, criterion: dict[str, Any]) -> dict[str, Any]:
        """`expediente call notifications erase '{"phone": "+52 442 123 4567"}' --role admin`"""
        principal = self.auth.require("admin")
        return self._erase(ERASURE.load(criterion), principal)

    def _erase(self, data: dict[str, Any], principal: Principal) -> dict[str, Any]:
        criterion = next(key for key in ("folio", "email", "phone") if data.get(key))
        value = str(data[criterion]).strip()
        if criterion == "email":
            addresses = [value.lower()]
        elif criterion == "phone":
            normal = _phone_or_none(value)
            addresses = [a for a in (normal, value) if a]
        else:
            value, addresses = _folio(value), []
        with self.store.transaction() as tx:
            erased = log_.erase(tx, criterion, value, addresses, principal.subject)
        return {"criterion": criterion, "subscriptions_erased": erased}

    @rpc(errors=ERRORS)
    def send_document(self, document: dict[str, Any]) -> dict[str, Any]:
        """Billing's statements and receipts: {"reference": "receipt:PAY-123", "channel":
        "email", "email": "ana@example.com", "subject": "...", "text": "...", "filename":
        "recibo.pdf", "data": base64 PDF} -> {"key", "status"}. Sent once per reference; the
        delivery log records it as any message (a second call answers the first's status)."""
        principal = self.auth.require(*DOCUMENT_SENDERS)
        if not set(DOCUMENT_SENDERS) & set(principal.roles):  # admin passes require(), not this
            raise Forbidden(f"documents are sent by billing (role system or billing_clerk); "
                            f"{principal.subject} holds neither")
        data = DOCUMENT.load(document)
        pdf = _pdf(data["data"])
        address = (data["email"].lower() if data["channel"] == "email"
                   else _phone_or_none(data["phone"]))
        if not address:
            raise ValidationError({"phone": ["a phone number, e.g. +52 442 123 4567"]})
        key = log_.delivery_key("document", data["reference"], data["channel"])
        with self.store.transaction() as tx:
            if log_.schedule(tx, key, data["channel"], "document",
                             not_before=self.notices.not_before(data["channel"])):
                tx.execute("INSERT INTO documents (key, address, language, subject, text, "
                           "filename, content_type, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                           (key, address, data["language"], data["subject"], data["text"],
                            data["filename"], data["content_type"],
                            base64.b64encode(pdf).decode()))
                tx.after_commit(self.notices.wake)
            tx.execute("SELECT status FROM deliveries WHERE key = %s", (key,))
            row = tx.fetchone()
        return {"key": key, "status": row[0] if row else "pending"}


class NotificationsHealth(health.Health):
    """/healthz, /readyz and /metrics with notifications' own checks and gauges."""

    notices: Notices

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        try:
            depth = log_.depth(self.notices.store)
        except Exception as exc:
            return False, {"store": f"unreachable: {type(exc).__name__}"}
        return True, {"store": "ok", "parked": sum(
            count for (_, status), count in depth.items() if status == "parked")}

    def refresh_metrics(self) -> None:
        from .sender import QUEUE_DEPTH

        depth = log_.depth(self.notices.store)
        for channel in log_.CHANNELS:
            for status in ("pending", "sending", "parked"):
                QUEUE_DEPTH.labels(channel, status).set(depth.get((channel, status), 0))
