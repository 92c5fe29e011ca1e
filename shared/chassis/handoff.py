"""The contact handoff's queue on RabbitMQ: declared alike by intake (which publishes to it) and
notifications (which consumes it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import kombu
from marshmallow import ValidationError

from shared.chassis.consumer import CloudEventHandler
from shared.contracts.cloudevents import InvalidCloudEvent
from shared.contracts.contacts import EXCHANGE, QUEUE, ROUTING_KEY, SubscriptionRequestSchema


def declare_contact_queue(channel: Any, queue_type: str | None = None) -> None:
    """Declare the private exchange, notifications' queue and their binding (idempotent).

    `queue_type` is EVENTS_QUEUE_TYPE, the same for every durable queue of the system: `quorum`
    on a RabbitMQ cluster, so the queue is replicated and notifications can declare it alike
    (RabbitMQ refuses a second declaration with other arguments)."""
    exchange = kombu.Exchange(EXCHANGE, type="direct", durable=True)
    arguments = {"x-queue-type": queue_type} if queue_type else None
    queue = kombu.Queue(QUEUE, exchange, routing_key=ROUTING_KEY, durable=True,
                        queue_arguments=arguments)
    queue.bind(channel).declare()


class HandoffHandler(CloudEventHandler):
    """Consumes the contact handoff's queue (plain JSON subscription requests, not CloudEvents)
    with the same retry-then-park as every consumer: a request that cannot be read is parked at
    once; a handler that raises is retried, then parked for an operator; none is acked unread.

    The worker gets the request as SubscriptionRequestSchema loaded it; applying one twice must
    change nothing (a subscription is unique per folio, channel and address)."""

    needs_patterns = False  # fed by intake through the private exchange, not by event type
    invalid_reason = "invalid_request"

    def queue_name(self) -> str:
        return QUEUE

    def declare_more(self, connection: kombu.Connection) -> None:
        channel = connection.channel()
        try:
            declare_contact_queue(channel, self.topology.queue_type)
        finally:
            channel.close()

    def decode(self, message: kombu.Message) -> dict[str, Any]:
        try:
            body = json.loads(message.body)
            if not isinstance(body, dict):
                raise InvalidCloudEvent("a subscription request is a JSON object")
            request: dict[str, Any] = SubscriptionRequestSchema().load(body)
        except (ValueError, ValidationError) as exc:
            raise InvalidCloudEvent(f"not a subscription request: {exc}") from None
        return request

    def describe(self, request: Any) -> str:
        return f"the subscription request for {request.get('folio')}"  # no contact details


def handoff_handler(store: str = "store", max_attempts: int = 4,
                    backoff: Sequence[float] = (0.2, 1.0, 5.0)) -> Callable[[Any], Any]:
    """Decorate `handler(self, request, consumer)` to consume the contact handoff's queue."""
    return HandoffHandler.decorator(store=store, max_attempts=max_attempts,
                                    backoff=tuple(backoff))
