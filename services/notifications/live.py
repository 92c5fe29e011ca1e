"""Live web: a Server-Sent Events stream per folio, which tracking's status page listens to.

Each replica binds a queue of its own (exclusive, gone with the replica) to the report events, so
every replica hears every event and tells the browsers connected to it at once, without waiting
for the delivery log. What a browser missed (it connects after a step, its stream dropped, this
replica's queue came late) comes from the events the consumer stored, in stream order: each
message's `id` is the report's stream version, and a reconnecting EventSource sends the last one
it saw as `Last-Event-ID`. A stream only carries what the public status page shows."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import eventlet
import kombu
from eventlet.queue import Empty, LightQueue
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from prometheus_client import Gauge

from shared.chassis.sqlstore import SqlStore
from shared.contracts.cloudevents import CloudEvent, InvalidCloudEvent
from shared.contracts.events import CATALOG, LANGUAGES, TYPE_PREFIX, label, short_name

log = logging.getLogger(__name__)

STREAMS = Gauge("expediente_notifications_live_streams", "Open Server-Sent Events streams")
HEARTBEAT_SECONDS = 15.0
GAP_RECHECK_SECONDS = 0.5


class Hub:
    """The browsers listening on this replica, by folio."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[LightQueue]] = {}

    def listen(self, folio: str) -> LightQueue:
        queue: LightQueue = LightQueue(maxsize=1000)
        self._listeners.setdefault(folio, set()).add(queue)
        STREAMS.inc()
        return queue

    def forget(self, folio: str, queue: LightQueue) -> None:
        listeners = self._listeners.get(folio)
        if listeners is not None and queue in listeners:
            listeners.discard(queue)
            STREAMS.dec()
            if not listeners:
                del self._listeners[folio]

    def publish(self, event: CloudEvent) -> None:
        for queue in list(self._listeners.get(str(event.subject), ())):
            if not queue.full():  # a stalled browser catches up from the store instead
                queue.put_nowait(event)


def public(event: dict[str, Any] | CloudEvent) -> dict[str, Any] | None:
    """What the public status page shows of an event: its step, labels, time and public data."""
    body = event.to_dict() if isinstance(event, CloudEvent) else event
    entry = CATALOG.get(short_name(str(body.get("type", ""))))
    if entry is None or not str(body.get("type", "")).startswith(TYPE_PREFIX):
        return None
    data = body.get("data") or {}
    return {"folio": body.get("subject") or data.get("folio"), "version": data.get("version"),
            "step": entry.name, "time": body.get("time"),
            "label": {language: label(entry.name, language) for language in LANGUAGES},
            "data": {name: data[name] for name in entry.public if name in data}}


def frame(view: dict[str, Any]) -> str:
    return f"id: {view['version']}\nevent: step\ndata: {json.dumps(view, sort_keys=True)}\n\n"


def stream(hub: Hub, store: SqlStore, folio: str, after: int,
           heartbeat: float = HEARTBEAT_SECONDS) -> Iterator[str]:
    """The SSE body: each step after version `after`, in order, each once, as it happens."""
    listener = hub.listen(folio)  # before reading the store: nothing falls between the two
    try:
        yield "retry: 2000\n\n"
        last = after
        waiting: dict[int, dict[str, Any]] = {}  # heard live, after a version not yet here
        look = True  # read the store: at the start, at a gap, and when the stream is quiet
        while True:
            if look:
                stored, last = _from_store(store, folio, last)
                yield from stored
                look = False
            while last + 1 in waiting:
                view = waiting.pop(last + 1)
                last += 1
                yield frame(view)
            waiting = {version: view for version, view in waiting.items() if version > last}
            try:
                event = listener.get(timeout=GAP_RECHECK_SECONDS if waiting else heartbeat)
            except Empty:
                look = True
                if not waiting:
                    yield ": keep-alive\n\n"
                continue
            heard = public(event)
            if heard is None or not isinstance(heard["version"], int) or heard["version"] <= last:
                continue
            if heard["version"] == last + 1:
                last += 1
                yield frame(heard)
            else:
                waiting[heard["version"]] = heard
                look = True
    finally:
        hub.forget(folio, listener)


def _from_store(store: SqlStore, folio: str, after: int) -> tuple[list[str], int]:
    """The stored events after `after` that follow it without a hole, and the new last."""
    rows, _ = store.run("SELECT version, body FROM seen_events WHERE folio = %s AND version > %s "
                        "ORDER BY version", (folio, after))
    frames = []
    for version, body in rows:
        if version != after + 1:
            break
        after = version
        view = public(json.loads(body))
        if view is not None:
            frames.append(frame(view))
    return frames, after


class LiveFeed(DependencyProvider):
    """This replica's queue of every report event, feeding the Hub."""

    def setup(self) -> None:
        config = self.container.config
        self.uri = config[AMQP_URI_CONFIG_KEY]
        exchange = kombu.Exchange(config.get("EVENTS_EXCHANGE", "expediente.events"),
                                  type="topic", durable=True)
        self.queue = kombu.Queue(f"notifications.live.{uuid.uuid4().hex[:12]}", exchange,
                                 routing_key=f"{TYPE_PREFIX}*", exclusive=True,
                                 auto_delete=True, durable=False)
        self.hub = Hub()
        self._running = False

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._consume, identifier="notifications.live")

    def stop(self) -> None:
        self._running = False

    def kill(self) -> None:
        self._running = False

    def get_dependency(self, worker_ctx: Any) -> Hub:
        return self.hub

    def _consume(self) -> None:
        while self._running:
            try:
                with kombu.Connection(self.uri, heartbeat=30) as conn, \
                        conn.Consumer(self.queue, on_message=self._on_message, no_ack=True):
                    while self._running:
                        try:
                            conn.drain_events(timeout=1)
                        except TimeoutError:  # socket.timeout too
                            conn.heartbeat_check()
            except Exception:
                if self._running:
                    log.exception("the live feed lost RabbitMQ; reconnecting")
                    eventlet.sleep(1)

    def _on_message(self, message: kombu.Message) -> None:
        try:
            self.hub.publish(CloudEvent.from_json(message.body))
        except InvalidCloudEvent:
            log.warning("the live feed skipped a message that is not a CloudEvent")


def last_event_id(header: str | None, after: str | None) -> int:
    """Where a stream resumes: the browser's Last-Event-ID, else `?after=`, else the start."""
    for value in (header, after):
        if value and value.strip().isascii() and value.strip().isdigit() \
                and len(value.strip()) < 10:
            return int(value.strip())
    return 0
