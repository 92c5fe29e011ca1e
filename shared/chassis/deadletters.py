"""Retry and dead-letter plumbing for event consumers: queue topology, confirmed copies, replay."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kombu

RETRY_EXCHANGE = "expediente.retry"

# Headers a consumer writes on the copies it re-publishes (all prefixed, so none clash with
# the publisher's own headers such as ce-type / ce-subject).
ATTEMPTS = "x-expediente-attempts"
CONSUMER = "x-expediente-consumer"
ERROR_TYPE = "x-expediente-error-type"
ERROR_MESSAGE = "x-expediente-error-message"
FIRST_FAILED_AT = "x-expediente-first-failed-at"
LAST_FAILED_AT = "x-expediente-last-failed-at"
DEAD_REASON = "x-expediente-dead-reason"
ROUTING_KEY = "x-expediente-routing-key"
RETRY_EXCHANGE_HEADER = "x-expediente-retry-exchange"
REPLAYS = "x-expediente-replays"
FAILURE_HEADERS = (ATTEMPTS, ERROR_TYPE, ERROR_MESSAGE, FIRST_FAILED_AT, LAST_FAILED_AT,
                   DEAD_REASON)

# The broker's own dead-letter history describes our delay queues; carrying it along would only
# grow every message by one table per round trip.
BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
COPIED_PROPERTIES = ("message_id", "timestamp", "correlation_id", "app_id", "type")
MAX_ERROR_MESSAGE = 2000


def retry_delays(max_attempts: int, backoff: Sequence[float]) -> tuple[float, ...]:
    """The wait before each retry: attempt n+1 waits backoff[n-1], the last value repeating."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if max_attempts > 1 and not backoff:
        raise ValueError("backoff needs at least one delay when retries are allowed")
    if any(delay <= 0 for delay in backoff):
        raise ValueError("backoff delays must be positive")
    return tuple(backoff[min(n, len(backoff) - 1)] for n in range(max_attempts - 1))


def dead_queue_name(queue: str) -> str:
    """`notifications.handle_report_event` -> `notifications.handle_report_event.dead`."""
    return queue if queue.endswith(".dead") else f"{queue}.dead"


def live_queue_name(queue: str) -> str:
    return queue.removesuffix(".dead")


@dataclass(frozen=True)
class Topology:
    """One consumer's queues: the live queue, one delay queue per retry, and the parking queue."""

    queue: str
    patterns: tuple[str, ...]
    events_exchange: str
    retry_exchange: str = RETRY_EXCHANGE
    delays: tuple[float, ...] = ()
    queue_type: str | None = None

    def delay_queue(self, attempt: int) -> str:
        return f"{self.queue}.retry.{attempt}"

    @property
    def dead_queue(self) -> str:
        return dead_queue_name(self.queue)

    def queue_names(self) -> list[str]:
        delayed = [self.delay_queue(n) for n in range(1, len(self.delays) + 1)]
        return [self.queue, *delayed, self.dead_queue]

    def _arguments(self, **extra: Any) -> dict[str, Any]:
        arguments = {"x-queue-type": self.queue_type} if self.queue_type else {}
        return {**arguments, **extra}

    def live(self) -> kombu.Queue:
        events = kombu.Exchange(self.events_exchange, type="topic", durable=True)
        retry = kombu.Exchange(self.retry_exchange, type="direct", durable=True)
        bindings = [kombu.binding(events, routing_key=p) for p in self.patterns]
        bindings.append(kombu.binding(retry, routing_key=self.queue))
        return kombu.Queue(self.queue, bindings=bindings, durable=True,
                           queue_arguments=self._arguments() or None)

    def entities(self) -> list[kombu.Queue]:
        retry = kombu.Exchange(self.retry_exchange, type="direct", durable=True)
        queues = [self.live()]
        for attempt, delay in enumerate(self.delays, start=1):
            expiry = {"x-message-ttl": max(1, round(delay * 1000)),
                      "x-dead-letter-exchange": self.retry_exchange,
                      "x-dead-letter-routing-key": self.queue}
            if self.queue_type == "quorum":
                # Quorum queues dead-letter at-most-once unless told otherwise.
                expiry.update({"x-dead-letter-strategy": "at-least-once",
                               "x-overflow": "reject-publish"})
            name = self.delay_queue(attempt)
            queues.append(kombu.Queue(name, retry, routing_key=name, durable=True,
                                      queue_arguments=self._arguments(**expiry)))
        queues.append(kombu.Queue(self.dead_queue, retry, routing_key=self.dead_queue,
                                  durable=True, queue_arguments=self._arguments() or None))
        return queues

    def declare(self, connection: kombu.Connection) -> None:
        """Idempotent; fails with PRECONDITION_FAILED if a queue exists with other arguments
        (a changed backoff needs its old delay queues deleted first)."""
        channel = connection.channel()
        try:
            for queue in self.entities():
                queue(channel).declare()
        finally:
            channel.close()


def failure_headers(headers: Mapping[str, Any], error: BaseException, consumer: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """The headers of a failed message's next copy: one more attempt, and what went wrong."""
    stamp = (now or datetime.now(UTC)).isoformat()
    kept = {k: v for k, v in headers.items() if not k.startswith(BROKER_HEADERS)}
    return {
        **kept,
        ATTEMPTS: int(headers.get(ATTEMPTS) or 0) + 1,
        CONSUMER: consumer,
        ERROR_TYPE: f"{type(error).__module__}.{type(error).__qualname__}",
        ERROR_MESSAGE: str(error)[:MAX_ERROR_MESSAGE],
        FIRST_FAILED_AT: headers.get(FIRST_FAILED_AT) or stamp,
        LAST_FAILED_AT: stamp,
    }


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A replayed message starts a fresh round of attempts; only the replay count remembers."""
    kept = {k: v for k, v in headers.items()
            if k not in FAILURE_HEADERS and not k.startswith(BROKER_HEADERS)}
    return {**kept, REPLAYS: int(headers.get(REPLAYS) or 0) + 1}


class ConfirmedPublisher:
    """Re-publishes copies of received messages; returns only once RabbitMQ confirmed and routed
    them (mandatory), so the original may be acked afterwards."""

    def __init__(self, amqp_uri: str, *, ssl: Any = None, login_method: str | None = None,
                 timeout: float = 10.0) -> None:
        self._params = dict(hostname=amqp_uri, ssl=ssl, login_method=login_method,
                            connect_timeout=timeout,
                            transport_options={"confirm_publish": True})
        self.timeout = timeout
        self._conn: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._lock = threading.Lock()

    def _connect(self) -> kombu.Producer:
        if self._producer is None:
            conn = kombu.Connection(**self._params)
            conn.ensure_connection(max_retries=1)
            self._conn, self._producer = conn, kombu.Producer(conn.channel())
        return self._producer

    def publish(self, message: kombu.Message, exchange: str, routing_key: str,
                headers: Mapping[str, Any]) -> None:
        properties = {k: message.properties[k] for k in COPIED_PROPERTIES
                      if message.properties.get(k) is not None}
        with self._lock:
            # A second try on a fresh connection covers one that went stale while idle; a copy
            # published twice is harmless because consumers are idempotent.
            for last_try in (False, True):
                try:
                    self._connect().publish(
                        message.body, exchange=exchange, routing_key=routing_key,
                        headers=dict(headers), delivery_mode=2, mandatory=True, retry=False,
                        content_type=message.content_type or "application/octet-stream",
                        content_encoding=message.content_encoding or "binary",
                        timeout=self.timeout, confirm_timeout=self.timeout, **properties)
                    return
                except Exception:
                    # After a failure the channel may still owe us a confirm for this message;
                    # reusing it could mistake that late confirm for the next message's.
                    self.close()
                    if last_try:
                        raise

    def close(self) -> None:
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            # A broken connection may fail to close; it is gone either way.
            with contextlib.suppress(Exception):
                conn.release()


def _describe(message: kombu.Message) -> dict[str, Any]:
    headers = dict(message.headers or {})
    try:
        event = json.loads(message.body)
    except ValueError:
        event = None
    body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) \
        else message.body
    return {
        "message_id": message.properties.get("message_id"),
        "type": event.get("type") if isinstance(event, dict) else None,
        "subject": event.get("subject") if isinstance(event, dict) else None,
        "routing_key": headers.get(ROUTING_KEY),
        "attempts": headers.get(ATTEMPTS),
        "reason": headers.get(DEAD_REASON),
        "error_type": headers.get(ERROR_TYPE),
        "error_message": headers.get(ERROR_MESSAGE),
        "first_failed_at": headers.get(FIRST_FAILED_AT),
        "last_failed_at": headers.get(LAST_FAILED_AT),
        "headers": headers,
        "body": body,
    }


def _parked(channel: Any, queue: str) -> int:
    return channel.queue_declare(queue=dead_queue_name(queue), passive=True).message_count


def list_dead_letters(amqp_uri: str, queue: str, limit: int | None = None
                      ) -> list[dict[str, Any]]:
    """What a consumer parked, oldest first. Peeks: every message stays in the dead queue.

    `queue` is the consumer's queue (`<service>.<method>`) or its `.dead` queue."""
    dead = kombu.Queue(dead_queue_name(queue), no_declare=True)
    held: list[kombu.Message] = []
    with kombu.Connection(amqp_uri, connect_timeout=10) as conn:
        channel = conn.channel()
        try:
            count = _parked(channel, queue)
            for _ in range(count if limit is None else min(count, limit)):
                message = dead(channel).get(no_ack=False, accept=None)
                if message is None:
                    break
                held.append(message)
            return [_describe(m) for m in held]
        finally:
            # Requeue only after the last get: a message rejected earlier would be handed back
            # by the next get. Closing the channel requeues anything a failure left unacked.
            for message in held:
                message.reject(requeue=True)
            channel.close()


def replay_dead_letters(amqp_uri: str, queue: str, limit: int | None = None) -> int:
    """Move parked messages back to the consumer's live queue, each confirmed before it leaves
    the dead queue; returns how many moved. Stops at what was parked when it began, so a handler
    that fails again cannot keep it going round."""
    dead = kombu.Queue(dead_queue_name(queue), no_declare=True)
    live = live_queue_name(queue)
    replayed = 0
    with kombu.Connection(amqp_uri, connect_timeout=10,
                          transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        producer = kombu.Producer(channel)
        budget = _parked(channel, queue)
        if limit is not None:
            budget = min(budget, limit)
        for _ in range(budget):
            message = dead(channel).get(no_ack=False, accept=None)
            if message is None:
                break
            headers = dict(message.headers or {})
            # Parked copies name the exchange that routes to their consumer; anything else is
            # sent through the default exchange, which routes by queue name too.
            exchange = headers.get(RETRY_EXCHANGE_HEADER, "")
            properties = {k: message.properties[k] for k in COPIED_PROPERTIES
                          if message.properties.get(k) is not None}
            producer.publish(
                message.body, exchange=exchange, routing_key=live,
                headers=replay_headers(headers), delivery_mode=2, mandatory=True,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                timeout=10, confirm_timeout=10, **properties)
            message.ack()
            replayed += 1
        channel.close()
    return replayed
