"""The contact handoff's queue on RabbitMQ: declared alike by intake (which publishes to it) and
notifications (which consumes it)."""

from __future__ import annotations

from typing import Any

import kombu

from shared.contracts.contacts import EXCHANGE, QUEUE, ROUTING_KEY


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
