"""The outbox relay: publishes an application's notification log to RabbitMQ, at least once.

The relay reads stored events after its saved position, publishes each as a CloudEvent with
publisher confirms, and saves the new position only after RabbitMQ confirmed them. A crash or a
broker outage at any point means re-publishing from the last saved position: events may arrive
twice (consumers are idempotent by event id), never zero times. Saves wake the relay at once, so
latency is one round trip, not a poll interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp
import kombu
from prometheus_client import Counter, Gauge, Histogram

from shared.chassis.sqlstore import SqlStore
from shared.contracts.cloudevents import CONTENT_TYPE, CloudEvent

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "expediente_relay_events_published_total", "Events confirmed by RabbitMQ", ["source"]
)
RELAY_LAG = Gauge(
    "expediente_relay_lag_events", "Stored events not yet confirmed on RabbitMQ", ["source"]
)
RELAY_ERRORS = Counter(
    "expediente_relay_errors_total", "Relay rounds that failed and will be retried", ["source"]
)
SAVE_TO_PUBLISH = Histogram(
    "expediente_relay_save_to_publish_seconds",
    "Time from an event's save to RabbitMQ's confirm",
    ["source"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

POSITIONS_DDL = """CREATE TABLE IF NOT EXISTS outbox_positions (
    name TEXT PRIMARY KEY, position BIGINT NOT NULL)"""


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


class OutboxRelay:
    """Follows one application's notification log and publishes it through a Publisher."""

    def __init__(
        self,
        *,
        name: str,
        select: Callable[[int, int], Sequence[Any]],
        max_id: Callable[[], int | None],
        convert: Callable[[Any], CloudEvent],
        publisher: Publisher,
        store: SqlStore,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        coalesce: float = 0.0,
        hold_after_confirm: float = 0.0,
    ) -> None:
        self.name = name
        self._select = select
        self._max_id = max_id
        self._convert = convert
        self.publisher = publisher
        self.store = store
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # A few milliseconds of patience after a wake-up gathers a burst of saves into one batch.
        self.coalesce = coalesce
        # Fault injection for tests of the crash window between confirm and position save.
        self.hold_after_confirm = hold_after_confirm
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._position: int | None = None  # known after the first round; only we move it
        # Set while this replica leads (see shared.chassis.leadership); None: always lead.
        self.leading: threading.Event | None = None
        with store.transaction() as tx:
            tx.lock_schema()
            tx.execute(POSITIONS_DDL)
            tx.execute(
                "INSERT INTO outbox_positions (name, position) VALUES (%s, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (name,),
            )

    def position(self) -> int:
        """The last notification id RabbitMQ confirmed (as saved in the store)."""
        with self.store.transaction() as tx:
            row = tx.execute(
                "SELECT position FROM outbox_positions WHERE name = %s", (self.name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def lag(self) -> int:
        """Stored events not yet confirmed by RabbitMQ (also exported as a gauge)."""
        lag = max(0, (self._max_id() or 0) - self.position())
        RELAY_LAG.labels(self.name).set(lag)
        return lag

    def publish_pending(self) -> int:
        """One round: publish what is stored after the position; return how many were published."""
        with self._lock:
            if self._position is None:
                self._position = self.position()
            notifications = self._select(self._position + 1, self.batch_size)
            if not notifications:
                return 0
            events = [self._convert(n) for n in notifications]
            self.publisher.publish(events)
            confirmed_at = time.time()
            for event in events:
                SAVE_TO_PUBLISH.labels(self.name).observe(
                    max(0.0, confirmed_at - event.time.timestamp())
                )
            if self.hold_after_confirm:
                time.sleep(self.hold_after_confirm)
            last = notifications[-1].id
            with self.store.transaction() as tx:
                tx.execute(
                    "UPDATE outbox_positions SET position = %s WHERE name = %s AND position < %s",
                    (last, self.name, last),
                )
            self._position = last
            PUBLISHED.labels(self.name).inc(len(events))
            return len(events)

    def run(self) -> None:
        """Loop until stopped: publish, then sleep until a save wakes us or the poll interval."""
        backoff = 0.1
        while not self.stopping.is_set():
            if self.leading is not None and not self.leading.is_set():
                self._position = None  # another replica may have moved it meanwhile
                self.leading.wait(self.poll_interval)
                continue
            try:
                published = self.publish_pending()
            except Exception as exc:
                RELAY_ERRORS.labels(self.name).inc()
                log.warning("relay %s: publish failed (%s); retrying in %.1fs", self.name,
                            exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if published >= self.batch_size:
                continue
            if self.wake.wait(self.poll_interval) and self.coalesce:
                self.stopping.wait(self.coalesce)
            self.wake.clear()
            self.publisher.keep_alive()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.publisher.close()
