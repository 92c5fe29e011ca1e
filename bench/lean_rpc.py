"""A lean nameko-protocol RPC client for load generation: pipelined calls on one channel.

nameko's ClusterRpcProxy costs about 1 ms of CPU per call; on a 2-core machine that shares its
cores with the service, RabbitMQ and PostgreSQL, the load generator would cap the figure it is
measuring. This speaks the same wire protocol (exchange `nameko-rpc`, routing key
`service.method`, context data in `nameko.*` headers, replies by correlation id)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import amqp
import kombu


class LeanRpc:
    def __init__(self, amqp_uri: str, context: dict[str, str]) -> None:
        self.conn = kombu.Connection(amqp_uri)
        self.channel = self.conn.channel()
        self.reply_queue = f"bench-reply-{uuid.uuid4().hex[:8]}"
        self.channel.exchange_declare("nameko-rpc", "topic", durable=True, auto_delete=False)
        self.channel.queue_declare(self.reply_queue, exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.reply_queue, "nameko-rpc", routing_key=self.reply_queue)
        self.headers = {f"nameko.{key}": value for key, value in context.items()}
        self.results: dict[str, dict[str, Any]] = {}
        self.channel.basic_consume(self.reply_queue, callback=self._on_reply, no_ack=True)

    def _on_reply(self, message: amqp.Message) -> None:
        self.results[message.properties["correlation_id"]] = json.loads(message.body)

    def send(self, service: str, method: str, *args: Any) -> str:
        correlation_id = uuid.uuid4().hex
        body = json.dumps({"args": list(args), "kwargs": {}})
        self.channel.basic_publish(
            amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                         reply_to=self.reply_queue, correlation_id=correlation_id,
                         application_headers=self.headers),
            exchange="nameko-rpc", routing_key=f"{service}.{method}")
        return correlation_id

    def wait(self, correlation_ids: Iterable[str], timeout: float = 60) -> list[Any]:
        answers = []
        for correlation_id in correlation_ids:
            while correlation_id not in self.results:
                self.conn.drain_events(timeout=timeout)
            reply = self.results.pop(correlation_id)
            if reply["error"]:
                raise RuntimeError(reply["error"])
            answers.append(reply["result"])
        return answers

    def pipeline(self, calls: list[tuple[str, str, tuple]], window: int) -> list[Any]:
        """Run every call, keeping `window` in flight; answers in call order."""
        pending: list[str] = []
        answers: list[Any] = []
        for service, method, args in calls:
            pending.append(self.send(service, method, *args))
            if len(pending) >= window:
                answers += self.wait([pending.pop(0)])
        answers += self.wait(pending)
        return answers

    def close(self) -> None:
        self.conn.release()
