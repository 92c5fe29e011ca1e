"""The consumer side of the event bus: an idempotent nameko entrypoint that retries, then parks."""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import eventlet
import kombu
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    HEADER_PREFIX,
    LOGIN_METHOD_CONFIG_KEY,
)
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, Entrypoint, Extension
from nameko.messaging import QueueConsumer
from prometheus_client import Counter

from shared.chassis import streamorder
from shared.chassis.deadletters import (
    ATTEMPTS,
    DEAD_REASON,
    ERROR_MESSAGE,
    ERROR_TYPE,
    RETRY_EXCHANGE,
    RETRY_EXCHANGE_HEADER,
    ROUTING_KEY,
    ConfirmedPublisher,
    Topology,
    failure_headers,
    list_dead_letters,
    replay_dead_letters,
    retry_delays,
)
from shared.chassis.sqlstore import SqlStore, Tx
from shared.contracts.cloudevents import CloudEvent, InvalidCloudEvent

__all__ = ["CloudEventHandler", "SqlStoreProvider", "cloud_event_handler", "list_dead_letters",
           "replay_dead_letters"]

log = logging.getLogger(__name__)

PROCESSED = Counter("expediente_consumer_events_processed_total",
                    "Events a consumer's handler applied and committed", ["consumer"])
DUPLICATES = Counter("expediente_consumer_duplicates_skipped_total",
                     "Deliveries of an already processed event, acked without a second apply",
                     ["consumer"])
FAILURES = Counter("expediente_consumer_handler_failures_total",
                   "Handler runs that raised and were rolled back", ["consumer"])
GAPS_FILLED = Counter("expediente_consumer_gaps_filled_total",
                      "Events applied out of a gap fetched from their source, in order",
                      ["consumer"])
BATCHES_SPLIT = Counter("expediente_consumer_batches_split_total",
                        "Batches rolled back and taken again one event at a time", ["consumer"])
DEAD_LETTERED = Counter("expediente_consumer_dead_lettered_total",
                        "Messages parked in a consumer's dead queue", ["consumer", "reason"])

PROCESSED_DDL = """CREATE TABLE IF NOT EXISTS processed_events (
    consumer TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
    processed_at TEXT NOT NULL, PRIMARY KEY (consumer, event_id))"""

Handler = Callable[[Any, CloudEvent, Tx], Any]
BatchHandler = Callable[[Any, list[CloudEvent], Tx], Any]
IN_FLIGHT_BATCHES = 2  # per batching entrypoint: one being applied, the next one filling
NAMEKO_HEADER = f"{HEADER_PREFIX}."


class SqlStoreProvider(DependencyProvider):
    """Gives workers the service's SqlStore, built in setup() from the nameko config over the
    environment; `<SERVICE>_`-prefixed keys win, so one environment can serve every service."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix

    def setup(self) -> None:
        config = {k: str(v) for k, v in self.container.config.items()
                  if isinstance(v, str | int | float)}
        prefix = self.container.service_name if self.prefix is None else self.prefix
        self.store = SqlStore.from_env({**os.environ, **config}, name=prefix)

    def stop(self) -> None:
        self.store.close()

    def kill(self) -> None:
        self.store.close()

    def get_dependency(self, worker_ctx: Any) -> SqlStore:
        return self.store


_prepared: weakref.WeakSet[SqlStore] = weakref.WeakSet()
_preparing = threading.Lock()


def _ensure_processed_table(store: SqlStore) -> None:
    with _preparing:
        if store not in _prepared:
            with store.transaction() as tx:
                tx.lock_schema()  # other replicas may be creating it right now
                tx.execute(PROCESSED_DDL)
                tx.execute(streamorder.POSITIONS_DDL)
            _prepared.add(store)


def claim(tx: Tx, consumer: str, event: CloudEvent) -> bool:
    """Record that `consumer` processed `event`; False if it already had. A concurrent delivery
    of the same event waits on the primary key and then sees it taken (or free, on rollback)."""
    tx.execute(
        "INSERT INTO processed_events (consumer, event_id, event_type, processed_at) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, event_id) DO NOTHING",
        (consumer, str(event.id), event.type, datetime.now(UTC).isoformat()),
    )
    return tx.rowcount == 1


def _transactional(handler: Handler, store_attr: str) -> Callable[[Any, CloudEvent, str], bool]:
    """The method nameko's worker calls: claim the event and run the handler in one transaction."""

    @functools.wraps(handler)
    def apply(service: Any, event: CloudEvent, consumer: str) -> bool:
        store: SqlStore = getattr(service, store_attr)
        _ensure_processed_table(store)
        with store.transaction() as tx:
            if not claim(tx, consumer, event):
                return False
            handler(service, event, tx)
        return True

    return apply


def _in_stream_order(handler: Handler | BatchHandler, store_attr: str, catch_up: str,
                     batched: bool = False) -> Callable[..., Any]:
    """Like `_transactional`, applying each subject's events in stream-version order and
    fetching a gap's events with the service's `catch_up(subject, after_version)` method.
    `batched`: the handler takes a list of events (see `_apply_batch`)."""

    def apply_one(service: Any, tx: Tx, consumer: str, event: CloudEvent) -> bool:
        # No claim: the stream position, moved in this transaction, already says it was applied.
        handler(service, [event] if batched else event, tx)  # type: ignore[arg-type]
        return True

    @functools.wraps(handler)
    def apply(service: Any, event: Any, consumer: str, *, batch: bool = False) -> Any:
        if batch:
            return _apply_batch(service, event, consumer, handler, store_attr)
        store: SqlStore = getattr(service, store_attr)
        _ensure_processed_table(store)
        version = streamorder.stream_version(event)
        subject = str(event.subject)
        with store.transaction() as tx:
            if streamorder.take_next(tx, consumer, subject, version):
                return apply_one(service, tx, consumer, event)
            last = streamorder.last_applied(tx, consumer, subject)
            if version <= last:
                return False
            if version == last + 1:
                applied = apply_one(service, tx, consumer, event)
                streamorder.advance(tx, consumer, subject, version)
                return applied
        # A gap: fetch outside any transaction (an RPC may take a while), then look again.
        fetched = list(getattr(service, catch_up)(subject, last))
        with store.transaction() as tx:
            last = streamorder.last_applied(tx, consumer, subject)
            if version <= last:
                return False
            missing = streamorder.fill_gap(event, last, fetched)
            for earlier in missing:
                apply_one(service, tx, consumer, earlier)
            if missing:
                GAPS_FILLED.labels(consumer).inc()
            applied = apply_one(service, tx, consumer, event)
            streamorder.advance(tx, consumer, subject, version)
            return applied

    return apply


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch did with each of its events (positions in the batch)."""

    applied: tuple[int, ...]
    duplicates: tuple[int, ...]  # at or below their stream's position: old news
    leftover: tuple[int, ...]  # past a gap, or not orderable: for the one-event path


def _apply_batch(service: Any, events: list[CloudEvent], consumer: str,
                 handler: Handler | BatchHandler, store_attr: str) -> BatchOutcome:
    """Many events in one transaction: every stream's position locked and read in one
    statement, the events that come next in their streams handed to the handler together (each
    stream's in version order), the positions moved in one more. An event past a gap is left
    for the one-event path, which fetches what is missing; one already applied is a duplicate."""
    store: SqlStore = getattr(service, store_attr)
    _ensure_processed_table(store)
    streams: dict[str, list[tuple[int, int]]] = {}
    leftover: list[int] = []
    for index, event in enumerate(events):
        try:
            version = streamorder.stream_version(event)
        except streamorder.NotOrderable:
            leftover.append(index)  # fails on its own, so it is retried and then parked
            continue
        streams.setdefault(str(event.subject), []).append((version, index))
    applied: list[int] = []
    duplicates: list[int] = []
    if streams:
        with store.transaction() as tx:
            positions = streamorder.lock_positions(tx, consumer, list(streams))
            moved = {}
            for subject, items in streams.items():
                last = positions[subject]
                for version, index in sorted(items):
                    if version <= last:
                        duplicates.append(index)
                    elif version == last + 1:
                        applied.append(index)
                        last = version
                    else:
                        leftover.append(index)
                if last > positions[subject]:
                    moved[subject] = last
            if applied:
                handler(service, [events[index] for index in applied], tx)  # type: ignore[arg-type]
            streamorder.move_positions(tx, consumer, moved)
    return BatchOutcome(tuple(applied), tuple(duplicates), tuple(leftover))


class CloudEventQueueConsumer(QueueConsumer):
    """nameko's queue consumer, handing over raw messages: the body is parsed (and a bad one
    parked) by the entrypoint, never decoded and silently acked by kombu."""

    def get_consumers(self, consumer_cls: Any, channel: Any) -> Any:
        for provider in self._providers:
            consumer = consumer_cls(
                queues=[provider.queue],
                on_message=functools.partial(self.handle_message, provider, None),
                on_decode_error=functools.partial(self._undecodable, provider),
            )
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def _undecodable(self, provider: CloudEventHandler, message: Any, exc: Exception) -> None:
        self.handle_message(provider, None, message)


class Republisher(Extension):
    """The entrypoint's confirmed publisher. A sub-extension, so the container closes it only
    after the last worker finished (entrypoints stop before their workers do)."""

    def setup(self) -> None:
        config = self.container.config
        self._publisher = ConfirmedPublisher(
            config[AMQP_URI_CONFIG_KEY], ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY))

    def publish(self, message: kombu.Message, exchange: str, routing_key: str,
                headers: dict[str, Any]) -> None:
        self._publisher.publish(message, exchange, routing_key, headers)

    def stop(self) -> None:
        self._publisher.close()

    def kill(self) -> None:
        self._publisher.close()


class CloudEventHandler(Entrypoint):
    """Consumes `<service>.<method>`; see the module docstring and `cloud_event_handler`."""

    queue_consumer = CloudEventQueueConsumer()
    republisher = Republisher()
    needs_patterns = True  # bound to the events exchange by type
    invalid_reason = "invalid_cloudevent"  # the dead reason of a message `decode` refuses

    def __init__(self, *patterns: str, store: str = "store", max_attempts: int = 4,
                 backoff: Sequence[float] = (0.2, 1.0, 5.0), batch: int = 0,
                 **kwargs: Any) -> None:
        if not patterns and self.needs_patterns:
            raise ValueError("a CloudEvent handler needs at least one routing pattern")
        self.patterns = tuple(patterns)
        self.store = store
        self.max_attempts = max_attempts
        self.delays = retry_delays(max_attempts, backoff)
        self.batch = batch  # > 0: up to this many events per worker (see cloud_event_handler)
        self._waiting: list[tuple[kombu.Message, Any, dict[str, Any]]] = []
        self._in_flight = 0
        self._flush_due = False
        super().__init__(**kwargs)

    def setup(self) -> None:
        # Declared here, not in start(): extensions start concurrently, and every queue must
        # exist before any consumer (or a publisher in the same process) runs.
        config = self.container.config
        if not isinstance(getattr(self.container.service_cls, self.store, None),
                          DependencyProvider):
            raise TypeError(f"{self.container.service_name}.{self.method_name} needs a "
                            f"dependency named {self.store!r} that provides a SqlStore")
        self.consumer_name = f"{self.container.service_name}.{self.method_name}"
        self.topology = Topology(
            queue=self.queue_name(),
            patterns=self.patterns,
            events_exchange=config.get("EVENTS_EXCHANGE", "expediente.events"),
            retry_exchange=config.get("RETRY_EXCHANGE", RETRY_EXCHANGE),
            delays=self.delays,
            queue_type=config.get("EVENTS_QUEUE_TYPE") or None,
        )
        self.queue = self.topology.live()
        with kombu.Connection(config[AMQP_URI_CONFIG_KEY], connect_timeout=10,
                              ssl=config.get(AMQP_SSL_CONFIG_KEY),
                              login_method=config.get(LOGIN_METHOD_CONFIG_KEY)) as conn:
            conn.ensure_connection(max_retries=3)
            self.topology.declare(conn)
            self.declare_more(conn)
        self.queue_consumer.register_provider(self)

    def queue_name(self) -> str:
        return self.consumer_name

    def declare_more(self, connection: kombu.Connection) -> None:
        """Whatever else the queue needs before anyone publishes (a subclass's own binding)."""

    def decode(self, message: kombu.Message) -> Any:
        """The worker's argument out of a message; raises InvalidCloudEvent if it is malformed."""
        return CloudEvent.from_json(message.body)

    def describe(self, event: Any) -> str:
        return f"event {event.id} ({event.type}, {event.subject})"

    def stop(self) -> None:
        self.queue_consumer.unregister_provider(self)
        while self._waiting:  # nothing more comes: what is here goes now, the limit aside
            self._spawn_batch()

    def handle_message(self, body: Any, message: kombu.Message) -> None:
        try:
            event = self.decode(message)
        except InvalidCloudEvent as exc:
            # Retrying cannot fix a malformed message: park it now.
            self._park(message, failure_headers(message.headers or {}, exc, self.consumer_name),
                       reason=self.invalid_reason)
            return
        # Only nameko's own context headers (call ids, language) travel on to the worker.
        context = {k.removeprefix(NAMEKO_HEADER): v for k, v in (message.headers or {}).items()
                   if k.startswith(NAMEKO_HEADER)}
        if self.batch:
            self._waiting.append((message, event, context))
            self._flush_soon()
        else:
            self._spawn_one(message, event, context)

    def _spawn_one(self, message: kombu.Message, event: Any, context: dict[str, Any],
                   settle: Callable[..., tuple[Any, Any]] | None = None) -> bool:
        """A worker for one event, `settle` (handle_result by default) taking its result; False
        if the container is being killed (the message goes back)."""
        try:
            self.container.spawn_worker(
                self, (event, self.consumer_name), {}, context_data=context,
                handle_result=functools.partial(settle or self.handle_result, message, event))
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)
            return False
        return True

    # ---- batches: the events that arrived while the last batch was applied go together ------

    def _flush_soon(self) -> None:
        """A batch once the messages already read have been handed over (a thread of its own
        runs after theirs), unless IN_FLIGHT_BATCHES are being applied: one of them ending
        starts the next."""
        if self._flush_due or not self._waiting or self._in_flight >= IN_FLIGHT_BATCHES:
            return
        self._flush_due = True
        self.container.spawn_managed_thread(self._flush, identifier=f"{self.consumer_name}.batch")

    def _flush(self) -> None:
        self._flush_due = False
        if self._waiting and self._in_flight < IN_FLIGHT_BATCHES:
            self._spawn_batch()

    def _spawn_batch(self) -> None:
        items, self._waiting = self._waiting[:self.batch], self._waiting[self.batch:]
        self._in_flight += 1
        if len(items) == 1:  # alone anyway: the one-event path, its failure its own
            if not self._spawn_one(*items[0], settle=self._handle_single_result):
                self._in_flight -= 1
            return
        try:
            self.container.spawn_worker(
                self, ([event for _, event, _ in items], self.consumer_name), {"batch": True},
                context_data=items[0][2],
                handle_result=functools.partial(self.handle_batch_result, items))
        except ContainerBeingKilled:
            self._in_flight -= 1
            for message, _, _ in items:
                self.queue_consumer.requeue_message(message)

    def _handle_single_result(self, message: kombu.Message, event: Any, worker_ctx: Any,
                              result: Any = None, exc_info: Any = None) -> tuple[Any, Any]:
        self._in_flight -= 1
        try:
            return self.handle_result(message, event, worker_ctx, result, exc_info)
        finally:
            self._flush_soon()

    def handle_batch_result(self, items: list[tuple[kombu.Message, Any, dict[str, Any]]],
                            worker_ctx: Any, result: Any = None, exc_info: Any = None
                            ) -> tuple[Any, Any]:
        """Committed: each applied or duplicate message acked, a leftover one taken alone.
        Rolled back: every message taken alone, so each one's failure is its own (retried,
        then parked) and the others are applied."""
        self._in_flight -= 1
        try:
            return self._settle_batch(items, result, exc_info)
        finally:
            self._flush_soon()  # the next batch, whatever became of this one

    def _settle_batch(self, items: list[tuple[kombu.Message, Any, dict[str, Any]]],
                      result: Any, exc_info: Any) -> tuple[Any, Any]:
        if exc_info is None:
            for index in result.applied:
                PROCESSED.labels(self.consumer_name).inc()
                self.queue_consumer.ack_message(items[index][0])
            for index in result.duplicates:
                DUPLICATES.labels(self.consumer_name).inc()
                self.queue_consumer.ack_message(items[index][0])
            alone = [items[index] for index in result.leftover]
        else:
            BATCHES_SPLIT.labels(self.consumer_name).inc()
            log.warning("%s: a batch of %d events failed (%r); taking them one at a time",
                        self.consumer_name, len(items), exc_info[1])
            alone = items
        if alone:  # from a thread of its own: this worker still holds its place in the pool
            def one_at_a_time() -> None:
                for item in alone:
                    self._spawn_one(*item)

            self.container.spawn_managed_thread(one_at_a_time,
                                                identifier=f"{self.consumer_name}.alone")
        return result, exc_info

    def handle_result(self, message: kombu.Message, event: Any, worker_ctx: Any,
                      result: Any = None, exc_info: Any = None) -> tuple[Any, Any]:
        if exc_info is None:
            (PROCESSED if result else DUPLICATES).labels(self.consumer_name).inc()
            self.queue_consumer.ack_message(message)
            return result, exc_info
        FAILURES.labels(self.consumer_name).inc()
        headers = failure_headers(message.headers or {}, exc_info[1], self.consumer_name)
        attempt = headers[ATTEMPTS]
        if attempt < self.max_attempts:
            log.warning("%s: %s failed on attempt %d/%d: %r; retrying in %.2fs",
                        self.consumer_name, self.describe(event), attempt,
                        self.max_attempts, exc_info[1], self.delays[attempt - 1])
            self._forward(message, self.topology.delay_queue(attempt), headers)
        else:
            self._park(message, headers, reason="max_attempts")
        return result, exc_info

    def _park(self, message: kombu.Message, headers: dict[str, Any], reason: str) -> None:
        log.error("%s: parking message %s in %s (%s): %s: %s", self.consumer_name,
                  message.properties.get("message_id"), self.topology.dead_queue, reason,
                  headers.get(ERROR_TYPE), headers.get(ERROR_MESSAGE))
        headers = {**headers, DEAD_REASON: reason, RETRY_EXCHANGE_HEADER:
                   self.topology.retry_exchange}
        if self._forward(message, self.topology.dead_queue, headers):
            DEAD_LETTERED.labels(self.consumer_name, reason).inc()

    def _forward(self, message: kombu.Message, queue: str, headers: dict[str, Any]) -> bool:
        """Confirmed copy to `queue`, then ack; if the copy fails, the original goes back."""
        headers.setdefault(ROUTING_KEY, message.delivery_info.get("routing_key"))
        try:
            self.republisher.publish(message, self.topology.retry_exchange, queue, headers)
        except Exception:
            log.exception("%s: could not move message %s to %s; requeueing it",
                          self.consumer_name, message.properties.get("message_id"), queue)
            eventlet.sleep(self.delays[0] if self.delays else 1.0)  # no hot redelivery loop
            self.queue_consumer.requeue_message(message)
            return False
        self.queue_consumer.ack_message(message)
        return True


def cloud_event_handler(*patterns: str, store: str = "store", max_attempts: int = 4,
                        backoff: Sequence[float] = (0.2, 1.0, 5.0),
                        catch_up: str | None = None, batch: int = 0) -> Callable[[Any], Any]:
    """Decorate `handler(self, event, tx)` to consume CloudEvents whose type matches a pattern
    (topic syntax: `mx.expediente.report.*`, `#`) from the queue `<service>.<method>`.

        class NotificationsService:
            name = "notifications"
            store = SqlStoreProvider()

            @cloud_event_handler("mx.expediente.report.*", store="store")
            def handle_report_event(self, event: CloudEvent, tx: Tx) -> None:
                tx.execute("INSERT INTO outgoing_sms (folio) VALUES (%s)", (event.subject,))

    `tx` is a transaction of the SqlStore that the dependency named `store` provides; it also
    records (consumer, event id) in `processed_events`, so a redelivered event is acked without
    a second call. A handler that raises is rolled back and retried after `backoff[n]` seconds
    (the last value repeats); after `max_attempts` the message is parked in `<queue>.dead`, where
    `list_dead_letters` / `replay_dead_letters` find it. No message is acked before its copy is
    confirmed.

    With `catch_up="fetch_report_events"` the handler sees each report's events in stream-version
    order, each once (see shared.chassis.streamorder; the stream position, not a claim per
    event, is the record of what was applied): the service's method
    `fetch_report_events(subject, after_version)` returns the events after that version (as
    CloudEvents or their dicts), typically by calling tracking's `report_events` over RPC.

    With `catch_up` and `batch=N`, the handler is `handler(self, events, tx)` and takes a list:
    the events that arrived while the last batch was being applied (up to N, each report's in
    version order) come in one transaction, with one statement for all their stream positions,
    so a handler that reads and writes its rows for the whole list at once pays a few round
    trips and one commit per batch instead of five and one per event. The method called alone,
    `consume(event, consumer)`, still takes one event (a list of one for the handler). A batch
    that raises is rolled back and its events taken one at a time, each with its own retries.
    """

    def decorate(handler: Any) -> Any:
        if batch and catch_up is None:
            raise ValueError("batch needs catch_up: only the ordered consumer takes batches")
        apply = (_transactional(handler, store) if catch_up is None
                 else _in_stream_order(handler, store, catch_up, batched=batch > 0))
        return CloudEventHandler.decorator(*patterns, store=store, max_attempts=max_attempts,
                                           backoff=tuple(backoff), batch=batch)(apply)

    return decorate
