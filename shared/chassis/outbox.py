"""The outbox relay: publishes an application's notification log to RabbitMQ, at least once.

The relay is a log follower (follower.py) whose handler publishes each stored event as a
CloudEvent with publisher confirms; the follower saves the new position only after RabbitMQ
confirmed them. A crash or a broker outage at any point means re-publishing from the last saved
position: events may arrive twice (consumers are idempotent by event id), never zero times, and
no event is passed over while a slower transaction still holds its id. Saves wake the relay at
once, so latency is one round trip, not a poll interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp
import kombu
from prometheus_client import Counter, Histogram

from shared.chassis.follower import Handler, LogFollower
from shared.chassis.sqlstore import Tx
from shared.chassis.transient import Transient
from shared.contracts.cloudevents import CONTENT_TYPE, CloudEvent

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "expediente_relay_events_published_total", "Events confirmed by RabbitMQ", ["source"]
)
SAVE_TO_PUBLISH = Histogram(
    "expediente_relay_save_to_publish_seconds",
    "Time from an event's save to RabbitMQ's confirm",
    ["source"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

class PublishNotConfirmed(ConnectionError):
    """RabbitMQ refused (nack) or did not confirm a publication in time."""


class Publisher:
    """Publishes CloudEvents to a durable topic exchange; a batch returns once RabbitMQ confirmed
    every message of it (one round trip per batch, not per message)."""

    def __init__(self, amqp_uri: str, exchange: str, heartbeat: int = 30,
                 confirm_timeout: float = 10.0) -> None:
        self.exchange = kombu.Exchange(exchange, type="topic", durable=True)
        self._uri = amqp_uri
        self._heartbeat = heartbeat
        self._confirm_timeout = confirm_timeout
        self._conn: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._sent = 0
        self._unconfirmed: set[int] = set()
        self._nacked = False

    def _connect(self) -> kombu.Producer:
        if self._producer is None:
            conn = kombu.Connection(self._uri, heartbeat=self._heartbeat, connect_timeout=5)
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            self.exchange(channel).declare()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._sent, self._unconfirmed, self._nacked = 0, set(), False
            self._conn = conn
            self._producer = kombu.Producer(channel, exchange=self.exchange)
        return self._producer

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True
        self._on_ack(delivery_tag, multiple)

    def publish(self, events: Sequence[CloudEvent]) -> None:
        """Returns only when RabbitMQ confirmed every event; raises otherwise."""
        producer = self._connect()
        try:
            channel = producer.channel
            for event in events:
                # Straight onto the channel: kombu's generic publish path (serialisers,
                # compression, declarations) costs more than the message itself here.
                message = amqp.Message(
                    event.to_json(),
                    content_type=CONTENT_TYPE,
                    content_encoding="utf-8",
                    delivery_mode=2,
                    message_id=event.id,
                    timestamp=int(event.time.timestamp()),
                    application_headers=event.amqp_headers(),
                )
                channel.basic_publish(message, exchange=self.exchange.name,
                                      routing_key=event.type)
                self._sent += 1
                self._unconfirmed.add(self._sent)
            self._wait_for_confirms()
        except Exception:
            self.close()
            raise

    def _wait_for_confirms(self) -> None:
        assert self._conn is not None
        deadline = time.monotonic() + self._confirm_timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{len(self._unconfirmed)} publications unconfirmed")
            self._conn.drain_events(timeout=remaining)
        if self._nacked:
            raise PublishNotConfirmed("RabbitMQ refused a publication (nack)")

    def keep_alive(self) -> None:
        """Send a heartbeat when one is due, so an idle relay keeps its connection."""
        if self._conn is not None:
            try:
                self._conn.heartbeat_check()
            except Exception:
                self.close()

    def close(self) -> None:
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # a dead connection may fail to close; it is gone either way
                log.debug("closing a broken AMQP connection failed", exc_info=True)


class OutboxRelay(Handler):
    """The log follower's handler that publishes: each notification becomes a CloudEvent, and a
    batch is published with confirms before the follower's transaction moves the position, so
    it moves only once RabbitMQ confirmed. A notification that cannot become a CloudEvent is
    poison (the follower parks it); a publish that fails is transient (the round is retried)."""

    def __init__(self, name: str, convert: Callable[[Any], CloudEvent], publisher: Publisher,
                 hold_after_confirm: float = 0.0) -> None:
        self.name = name
        self.convert = convert
        self.publisher = publisher
        # Fault injection for tests of the crash window between confirm and position save.
        self.hold_after_confirm = hold_after_confirm

    def prepare(self, notifications: Sequence[Any]) -> None:
        events = [self.convert(n) for n in notifications]
        try:
            self.publisher.publish(events)
        except Exception as exc:
            raise Transient(f"publishing to RabbitMQ failed: {exc!r}") from exc
        confirmed_at = time.time()
        for event in events:
            SAVE_TO_PUBLISH.labels(self.name).observe(
                max(0.0, confirmed_at - event.time.timestamp()))
        PUBLISHED.labels(self.name).inc(len(events))
        if self.hold_after_confirm:
            time.sleep(self.hold_after_confirm)

    def handle(self, tx: Tx, notifications: Sequence[Any]) -> None:
        """Nothing to write: the position, which the follower moves, is the relay's record."""

    def describe(self, notification: Any) -> tuple[str, str]:
        event = self.convert(notification)
        return event.type, event.subject or str(notification.originator_id)

    def idle(self) -> None:
        self.publisher.keep_alive()

    def close(self) -> None:
        self.publisher.close()


def relay_follower(app: Any, convert: Callable[[Any], CloudEvent], publisher: Publisher,
                   **options: Any) -> LogFollower:
    """The outbox relay of an application: a log follower named "<application>.relay"."""
    name = f"{app.name}.relay"
    hold = options.pop("hold_after_confirm", 0.0)
    return LogFollower(name, app, OutboxRelay(app.name, convert, publisher, hold), **options)
