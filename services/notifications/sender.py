"""The sender: works through the delivery log, handing each due delivery to its channel.

One green thread per process takes due rows under a lease (replicas never take the same row), and
sends them with up to DELIVERY_CONCURRENCY at a time; each recipient's deliveries of one batch go
in order, one after the other. The consumer wakes it when it commits new rows; otherwise it looks
again when the next retry falls due, or every DELIVERY_POLL_SECONDS.

An outcome is recorded with its attempt: sent, rejected (never to be tried again), or retry: due
again after an exponential backoff with jitter, until DELIVERY_MAX_ATTEMPTS, then parked for an
operator (`expediente notifications replay`). SMS and WhatsApp due in the city's quiet hours wait
for the morning; they are never dropped."""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import eventlet
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram

from shared.chassis.sqlstore import SqlStore
from shared.contracts.cloudevents import CloudEvent

from . import deliveries as log_
from .channels import Attachment, Channel, Delivery, Outcome, rejected, retry
from .links import Links
from .messages import Message, confirmation, render
from .webhooks import WebhookSender, backoff
from .webpush import EXPIRED, vapid_public_key

log = logging.getLogger(__name__)

OUTCOMES = Counter("expediente_notifications_deliveries_total",
                   "Delivery attempts by channel and outcome: sent, rejected (failed for good), "
                   "retried, parked (after the last attempt), cancelled", ["channel", "outcome"])
DELIVERY_SECONDS = Histogram(
    "expediente_notifications_delivery_seconds",
    "From the event's time to the channel's acceptance of its message",
    ["channel"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))

QUEUE_DEPTH = Gauge("expediente_notifications_queue_depth",
                    "Deliveries waiting (pending), being sent, or parked, by channel",
                    ["channel", "status"])

IDLE_MIN = 0.02  # seconds the sender waits, at least, when it found nothing it could take
QUIET_CHANNELS = ("sms", "whatsapp")  # a phone that buzzes at night; email and push wait for no one


class Unsendable(Exception):
    """The delivery has nothing left to send (its subscription ended, its webhook was deleted):
    cancelled, not retried."""


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def quiet_hours(text: str) -> tuple[time, time] | None:
    """"22:00-08:00" -> (22:00, 08:00); empty: none."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"QUIET_HOURS must read like 22:00-08:00, not {text!r}") from None
    if start == end:
        raise ValueError(f"QUIET_HOURS {text!r} starts when it ends: leave it empty for none")
    return start, end


def after_quiet(at: datetime, channel: str, quiet: tuple[time, time] | None,
                zone: ZoneInfo) -> datetime:
    """`at`, or the end of the quiet hours it falls in (SMS and WhatsApp only)."""
    if quiet is None or channel not in QUIET_CHANNELS:
        return at
    start, end = quiet
    local = at.astimezone(zone)
    now_t = local.time().replace(tzinfo=None)
    inside = (start <= now_t < end) if start < end else (now_t >= start or now_t < end)
    if not inside:
        return at
    day = local.date() if (start < end or now_t < end) else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


class Notices:
    """What the consumer, the doors and the sender share: the store, the channels, the links,
    and the city's clock."""

    def __init__(self, store: SqlStore, channels: Mapping[str, Channel],
                 webhooks: WebhookSender, links: Links, config: Mapping[str, Any],
                 wake: Callable[[], None]) -> None:
        self.store, self.channels, self.webhooks, self.links = store, channels, webhooks, links
        self.wake = wake
        self.zone = ZoneInfo(str(config.get("TIMEZONE") or "America/Mexico_City"))
        self.quiet = quiet_hours(str(config.get("QUIET_HOURS") or ""))
        self.max_attempts = int(config.get("DELIVERY_MAX_ATTEMPTS") or 8)
        self.backoff_base = float(config.get("DELIVERY_BACKOFF_SECONDS") or 5)
        self.backoff_cap = float(config.get("DELIVERY_BACKOFF_MAX_SECONDS") or 3600)
        self.status_origin = origin_of(links.status_page_url)
        key = str(config.get("VAPID_PRIVATE_KEY") or "").strip()
        self.push_public_key = vapid_public_key(key) if key else None

    def not_before(self, channel: str, at: datetime | None = None) -> datetime:
        return after_quiet(at or log_.now(), channel, self.quiet, self.zone)

    # ---- one delivery ---------------------------------------------------------------------

    def deliver(self, due: log_.Due) -> str:
        """Send one leased delivery and record what became of it; returns the recorded status."""
        try:
            outcome = self._send(due)
        except Unsendable as exc:
            return self._record(due, "cancelled", str(exc))
        except Exception as exc:  # a bug in building it: retried, then parked for an operator
            log.exception("delivery %s (%s) could not be built", due.key, due.channel)
            outcome = retry(f"{type(exc).__name__}: {exc}")
        if outcome.status == "sent":
            if due.event_time and due.purpose == "step":
                elapsed = (log_.now() - datetime.fromisoformat(due.event_time)).total_seconds()
                DELIVERY_SECONDS.labels(due.channel).observe(max(0.0, elapsed))
            return self._record(due, "sent", outcome.detail, provider_id=outcome.provider_id)
        if outcome.status == "rejected":
            return self._record(due, "rejected", outcome.detail)
        if due.attempts >= self.max_attempts:
            log.error("delivery %s (%s) parked after %d attempts: %s", due.key, due.channel,
                      due.attempts, outcome.detail)
            return self._record(due, "parked", outcome.detail)
        wait = backoff(due.attempts, base=self.backoff_base, cap=self.backoff_cap)
        retry_at = self.not_before(due.channel, log_.now() + timedelta(seconds=wait))
        return self._record(due, "pending", outcome.detail, retry_at=retry_at)

    def _record(self, due: log_.Due, status: str, detail: str, *,
                provider_id: str | None = None, retry_at: datetime | None = None) -> str:
        with self.store.transaction() as tx:
            if not log_.record(tx, due, status, detail, provider_id=provider_id,
                               retry_at=retry_at):
                return "lost"  # the lease ran out and another sender took the delivery
            if (status == "rejected" and due.channel == "push" and due.subscription_id
                    and detail.startswith(EXPIRED)):
                # The browser's subscription is gone (404/410): forget it.
                log_.end(tx, due.subscription_id, status="ended")
            if due.purpose == "document" and status in ("sent", "rejected", "cancelled"):
                tx.execute("DELETE FROM documents WHERE key = %s", (due.key,))
        OUTCOMES.labels(due.channel, "retried" if status == "pending" else status).inc()
        return status

    def _send(self, due: log_.Due) -> Outcome:
        if due.channel == "webhook":
            return self._post_webhook(due)
        channel = self.channels.get(due.channel)
        if channel is None:
            return retry(f"the {due.channel} channel is not configured in this deployment")
        return channel.send(self._delivery(due))

    def _delivery(self, due: log_.Due) -> Delivery:
        with self.store.transaction() as tx:
            if due.purpose == "document":
                tx.execute("SELECT address, language, subject, text, filename, content_type, "
                           "data FROM documents WHERE key = %s", (due.key,))
                row = tx.fetchone()
                if row is None or not row[0]:
                    raise Unsendable("the document was erased")
                address, language, subject, text, filename, content_type, data = row
                message = Message(subject=subject, text=text,
                                  html=f"<p>{html.escape(text)}</p>", sms=text)
                return Delivery(due.key, address, message, language, purpose="document",
                                attachment=Attachment(filename, content_type,
                                                      _unbase64(data)))
            subscription, body = log_.subscription_and_event(tx, due.subscription_id or "",
                                                             due.event_id or "")
            if subscription is None or not subscription.address:
                raise Unsendable("the subscription ended")
            if due.purpose == "confirm":
                if subscription.status != "pending":
                    raise Unsendable(f"the subscription is {subscription.status}")
                message = confirmation(subscription.folio,
                                       confirm_url=self.links.confirm_url(subscription.id),
                                       language=subscription.language)
                return Delivery(due.key, subscription.address, message, subscription.language,
                                purpose="confirm")
            if subscription.status != "active":
                raise Unsendable(f"the subscription is {subscription.status}")
            # Only the finished work's message shows a photo: the last one taken "after".
            photos = (log_.seen(tx, subscription.folio, (PHOTO_TYPE,))
                      if body is not None and body.get("type") == COMPLETED_TYPE else [])
        if body is None:
            raise Unsendable("the event is not known here")
        event = CloudEvent.from_dict(body)
        after = [p["data"].get("url") for p in photos if p["data"].get("stage") == "after"]
        opt_out = self.links.opt_out_url(subscription.id)
        rendered = render(event, language=subscription.language,
                          status_url=self.links.status_url(subscription.folio,
                                                           subscription.access_token),
                          unsubscribe_url=opt_out, photo_url=after[-1] if after else None,
                          timezone=self.zone.key)
        if rendered is None:
            raise Unsendable(f"{event.type} is not a step citizens are told of")
        return Delivery(due.key, subscription.address, rendered, subscription.language,
                        unsubscribe_url=opt_out)

    def _post_webhook(self, due: log_.Due) -> Outcome:
        with self.store.transaction() as tx:
            tx.execute("SELECT url, secrets, status FROM webhooks WHERE id = %s",
                       (due.webhook_id,))
            row = tx.fetchone()
            body = log_.seen_event(tx, due.event_id or "")
        if row is None or row[2] != "active":
            raise Unsendable("the webhook was deleted")
        if body is None:
            raise Unsendable("the event is not known here")
        secrets = [entry["secret"] for entry in json.loads(row[1])
                   if not entry.get("expires_at") or entry["expires_at"] > log_.stamp(log_.now())]
        if not secrets:
            return rejected("the webhook has no valid secret")
        return self.webhooks.post(row[0], secrets, due.key, CloudEvent.from_dict(body).to_json())


PHOTO_TYPE = "mx.expediente.report.photo_added"
COMPLETED_TYPE = "mx.expediente.report.work_completed"


def _unbase64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


class Sender(DependencyProvider):
    """Runs the sender's thread; gives each worker the shared `Notices`."""

    def __init__(self, store: str = "store") -> None:
        self.store_attr = store
        self._wakeup = threading.Event()
        self._running = False
        self.notices: Notices | None = None

    def setup(self) -> None:
        from .channelset import build_channels

        config = self.container.config
        self.channels, self.webhook_sender, self.links = build_channels(config)
        self.concurrency = int(config.get("DELIVERY_CONCURRENCY") or 20)
        self.poll = float(config.get("DELIVERY_POLL_SECONDS") or 1.0)
        self.lease = timedelta(seconds=float(config.get("DELIVERY_LEASE_SECONDS") or 60))
        self.enabled = str(config.get("DELIVERY_SENDER") or "on").lower() not in ("off", "0",
                                                                                  "false")

    def start(self) -> None:
        provider = next(dependency for dependency in self.container.dependencies
                        if dependency.attr_name == self.store_attr)
        store: SqlStore = provider.store
        self.notices = Notices(store, self.channels, self.webhook_sender, self.links,
                               self.container.config, self.wake)
        self._running = True
        self._pool = GreenPool(self.concurrency)
        if self.enabled:
            self.container.spawn_managed_thread(self._run, identifier="notifications.sender")

    def stop(self) -> None:
        self._running = False
        self._wakeup.set()
        if hasattr(self, "_pool"):
            self._pool.waitall()

    def kill(self) -> None:
        self._running = False
        self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    def get_dependency(self, worker_ctx: Any) -> Notices:
        assert self.notices is not None
        return self.notices

    def _run(self) -> None:
        assert self.notices is not None
        notices = self.notices
        while self._running:
            self._wakeup.clear()
            try:
                free = self._pool.free()
                batch = log_.take_due(notices.store, free, self.lease) if free else []
            except Exception:
                log.exception("could not take due deliveries; trying again shortly")
                batch = []
                eventlet.sleep(self.poll)
            for group in _by_recipient(batch):
                self._pool.spawn_n(_in_order, notices, group)
            if batch and len(batch) == free:
                eventlet.sleep(0)  # there may be more: look again at once
                continue
            self._wakeup.wait(self._idle_wait(notices) if not batch else 0.01)

    def _idle_wait(self, notices: Notices) -> float:
        """Until the next retry falls due, or a wake-up. Never less than IDLE_MIN: a due row
        that was not taken waits for its recipient's message in flight, which needs the hub."""
        try:
            due = log_.next_due(notices.store)
        except Exception:
            return self.poll
        if due is None:
            return self.poll
        return max(IDLE_MIN, min(self.poll, (due - log_.now()).total_seconds()))


def _by_recipient(batch: list[log_.Due]) -> list[list[log_.Due]]:
    groups: dict[str, list[log_.Due]] = {}
    for due in batch:
        # A webhook takes each report's events in order, different reports' side by side.
        recipient = due.subscription_id or (due.webhook_id and f"{due.webhook_id}:{due.folio}"
                                            ) or due.key
        groups.setdefault(f"{recipient}:{due.channel}", []).append(due)
    return list(groups.values())


def _in_order(notices: Notices, group: list[log_.Due]) -> None:
    for due in group:
        try:
            notices.deliver(due)
        except Exception:  # the lease runs out and the delivery is taken again
            log.exception("delivery %s could not be recorded", due.key)
