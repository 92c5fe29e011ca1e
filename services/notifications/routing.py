"""Which deliveries a report event, or a citizen's subscription request, makes: the consumer's
decisions, each written to the delivery log in the transaction that claims the message."""

from __future__ import annotations

import json
import logging
from typing import Any

from prometheus_client import Histogram

from shared.chassis.sqlstore import Tx
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import short_name

from . import deliveries as log_
from . import hooks
from .messages import NOTIFIED
from .sender import Notices

log = logging.getLogger(__name__)

CONSUMER_LAG = Histogram(
    "expediente_notifications_consumer_lag_seconds",
    "From a report event's time to its deliveries being decided here",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))

NOTIFIED_TYPES = tuple(f"mx.expediente.report.{step}" for step in NOTIFIED)


def decide(tx: Tx, event: CloudEvent, notices: Notices) -> int:
    """Remember the event, and schedule its message to every active subscription of the folio
    that wants this step, and its CloudEvent to every webhook whose scope it is in."""
    folio = str(event.subject or event.data.get("folio") or "")
    tx.lock(f"notifications:{folio}")  # a subscription of the folio arriving now waits
    step = short_name(event.type)
    data = event.data if isinstance(event.data, dict) else {}
    log_.remember(tx, str(event.id), folio, int(data.get("version") or 0), event.type,
                  log_.stamp(event.time), event.to_json().decode())
    if step in ("opened", "triaged") and data.get("department"):
        log_.set_department(tx, folio, str(data["department"]))
    scheduled = 0
    if step in NOTIFIED:
        for subscription in log_.of_folio(tx, folio):
            if subscription.wants(step):
                scheduled += _schedule_step(tx, notices, event, subscription)
    for hook_id in hooks.matching(tx, event.type, folio):
        scheduled += log_.schedule(
            tx, log_.delivery_key(str(event.id), hook_id, "webhook"), "webhook", "step",
            not_before=log_.now(), event_id=str(event.id), folio=folio, webhook_id=hook_id,
            event_time=log_.stamp(event.time))
    lag = (log_.now() - event.time).total_seconds()
    tx.after_commit(lambda: CONSUMER_LAG.observe(max(0.0, lag)))
    if scheduled:
        tx.after_commit(notices.wake)
    return scheduled


def _schedule_step(tx: Tx, notices: Notices, event: CloudEvent,
                   subscription: log_.Subscription) -> int:
    return int(log_.schedule(
        tx, log_.delivery_key(str(event.id), subscription.id, subscription.channel),
        subscription.channel, "step", not_before=notices.not_before(subscription.channel),
        event_id=str(event.id), folio=subscription.folio, subscription_id=subscription.id,
        event_time=log_.stamp(event.time)))


def addresses(contact: dict[str, Any], normal_phone: Any) -> list[tuple[str, str]]:
    """(channel, address) for each channel the citizen chose; none chosen: email if given,
    else SMS. A phone that cannot be a phone is skipped (its channels too)."""
    email = (contact.get("email") or "").strip()
    phone = normal_phone(contact.get("phone") or "") if contact.get("phone") else None
    chosen = list(contact.get("notify_by") or []) or (["email"] if email else ["sms"])
    found = []
    for channel in dict.fromkeys(chosen):
        if channel == "email" and email:
            found.append((channel, email.lower()))
        elif channel in ("sms", "whatsapp") and phone:
            found.append((channel, phone))
    return found


def take_request(tx: Tx, request: dict[str, Any], notices: Notices, normal_phone: Any) -> int:
    """A citizen's contact details for a folio, from intake: one subscription per channel. The
    reporter (who holds the folio's access token) is told at once, and of every step already
    seen; anyone else following the folio gets a confirmation first, and nothing else until
    they confirm."""
    folio = request["folio"]
    # The folio's events being decided now take their turn: each sees the other, so a step
    # decided before the subscription is backfilled, one decided after it is scheduled.
    tx.lock(f"notifications:{folio}")
    role = "reporter" if request.get("access_token") else "follower"
    contact = request["contact"]
    language = str(contact.get("language") or "es")
    scheduled = 0
    for channel, address in addresses(contact, normal_phone):
        subscription, created = log_.subscribe(
            tx, folio, channel, address, language=language, role=role,
            steps=contact.get("steps") or None,
            access_token=request.get("access_token"))
        if not created:
            continue
        if role == "follower":
            scheduled += log_.schedule(
                tx, log_.delivery_key("confirm", subscription.id), channel, "confirm",
                not_before=notices.not_before(channel), folio=folio,
                subscription_id=subscription.id)
            continue
        for body in log_.seen(tx, folio, NOTIFIED_TYPES):
            scheduled += _schedule_step(tx, notices, CloudEvent.from_dict(body), subscription)
    if scheduled:
        tx.after_commit(notices.wake)
    return scheduled


def confirmed(tx: Tx, subscription_id: str) -> log_.Subscription | None:
    """A follower confirmed: from now on, each step."""
    return log_.confirm(tx, subscription_id)


def scopes_json(values: Any) -> str:
    return json.dumps(sorted(set(values)))
