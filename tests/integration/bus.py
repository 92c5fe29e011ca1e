"""The test's own RabbitMQ exchanges for consumers under test: it runs their containers,
publishes to them and removes every queue they made."""

from __future__ import annotations

import eventlet
import kombu
from nameko.containers import ServiceContainer
from prometheus_client import REGISTRY

from shared.chassis.consumer import CloudEventHandler
from shared.chassis.outbox import Publisher
from shared.contracts.cloudevents import CONTENT_TYPE, CloudEvent
from tests.conftest import unique


class Bus:
    """The test's own exchanges, the containers it runs, and cleanup of every queue they made."""

    def __init__(self, amqp_uri: str, exchange: str) -> None:
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.retry_exchange = unique("test.retry")
        self.containers: list[ServiceContainer] = []

    def run(self, service_cls: type, store_env: dict[str, str]) -> ServiceContainer:
        config = {"AMQP_URI": self.amqp_uri, "EVENTS_EXCHANGE": self.exchange,
                  "RETRY_EXCHANGE": self.retry_exchange, **store_env}
        container = ServiceContainer(service_cls, config)
        self.containers.append(container)
        container.start()
        return container

    def publish(self, *events: CloudEvent) -> None:
        publisher = Publisher(self.amqp_uri, self.exchange)
        try:
            publisher.publish(events)
        finally:
            publisher.close()

    def publish_raw(self, body: bytes, routing_key: str) -> None:
        with kombu.Connection(self.amqp_uri) as conn:
            conn.Producer().publish(body, exchange=self.exchange, routing_key=routing_key,
                                    content_type=CONTENT_TYPE, content_encoding="utf-8")

    def parked(self, queue: str) -> int:
        with kombu.Connection(self.amqp_uri) as conn:
            return conn.default_channel.queue_declare(f"{queue}.dead", passive=True).message_count

    def close(self) -> None:
        queues = []
        for container in self.containers:
            queues += [name for ep in container.entrypoints if isinstance(ep, CloudEventHandler)
                       for name in ep.topology.queue_names()]
            try:
                with eventlet.Timeout(20):
                    container.stop()
            except eventlet.Timeout:
                container.kill()
        with kombu.Connection(self.amqp_uri) as conn:
            channel = conn.default_channel
            for name in queues:
                channel.queue_delete(name)
            channel.exchange_delete(self.exchange)
            channel.exchange_delete(self.retry_exchange)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
