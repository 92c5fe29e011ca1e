"""nameko's `rpc` entrypoint, answering without publisher confirms.

A confirm on an RPC reply buys nothing: if the broker loses a reply, the caller times out and
retries, which it must handle anyway. Waiting for one costs a broker round trip and a reader wake
per call, a large share of tracking's per-call overhead under load. Requests are consumed exactly
as nameko does; events go through the outbox relay, with confirms.

`@rpc(errors=ERRORS)` takes the service's error table: an error it knows goes back with its wire
code, status, message and field messages next to nameko's own keys, so the caller's
shared/chassis/rpcclient.py raises the same code (nameko's clients still see a RemoteError)."""

from __future__ import annotations

import sys
from typing import Any

import kombu.serialization
from kombu.utils.json import dumps
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    LOGIN_METHOD_CONFIG_KEY,
)
from nameko.exceptions import UnserializableValueError, serialize
from nameko.rpc import Rpc, RpcConsumer, get_rpc_exchange

from shared.chassis.amqpfast import fast_channel
from shared.chassis.errortable import ErrorTable


class ReplyPublisher(Publisher):
    use_confirms = False


def error_of(exc_info: Any, table: ErrorTable | None) -> dict[str, Any] | None:
    """nameko's serialised error, plus the wire code if the table knows the exception."""
    if exc_info is None:
        return None
    error = serialize(exc_info[1])
    wire = table.wire(exc_info[1]) if table is not None else None
    if wire is not None:
        error.update(wire.to_dict())
    return error


class ReplyingRpcConsumer(RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any,
                      error: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """Reply as nameko's Responder.send_response does; `error` is the reply's error when
        the entrypoint worked it out (with its code), else nameko's serialisation of it."""
        if error is None and exc_info is not None:
            error = serialize(exc_info[1])
        config = self.container.config
        if (message.properties.get("content_type") == "application/json"
                and not config.get(AMQP_SSL_CONFIG_KEY)):
            result, exc_info = self._reply_fast(config, message, result, exc_info, error)
        else:
            result, exc_info = self._reply(config, message, result, exc_info, error)
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def _reply_fast(self, config: Any, message: Any, result: Any, exc_info: Any,
                    error: dict[str, Any] | None) -> tuple[Any, Any]:
        """Serialise once and write the frame directly on the shared channel."""
        try:
            body = dumps({"result": result, "error": error})
        except Exception:
            exc_info = sys.exc_info()
            body = dumps({"result": None, "error": serialize(UnserializableValueError(result))})
            result = None
        fast_channel(config[AMQP_URI_CONFIG_KEY]).publish_json(
            body, exchange=get_rpc_exchange(config).name,
            routing_key=message.properties["reply_to"],
            correlation_id=message.properties.get("correlation_id"))
        return result, exc_info

    def _reply(self, config: Any, message: Any, result: Any, exc_info: Any,
               error: dict[str, Any] | None) -> tuple[Any, Any]:
        """Encoded as the request was (another serializer, or TLS to the broker)."""
        serializer = kombu.serialization.registry.type_to_name[
            message.properties["content_type"]]
        try:
            kombu.serialization.dumps(result, serializer)
        except Exception:
            exc_info = sys.exc_info()
            error = serialize(UnserializableValueError(result))
            result = None
        publisher = ReplyPublisher(config[AMQP_URI_CONFIG_KEY],
                                   ssl=config.get(AMQP_SSL_CONFIG_KEY),
                                   login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        publisher.publish({"result": result, "error": error}, serializer=serializer,
                          exchange=get_rpc_exchange(config),
                          routing_key=message.properties["reply_to"],
                          correlation_id=message.properties.get("correlation_id"))
        return result, exc_info


class FastRpc(Rpc):
    """`@rpc(errors=ERRORS)`: the table's exceptions are expected ones, answered by code."""

    rpc_consumer = ReplyingRpcConsumer()

    def __init__(self, errors: ErrorTable | None = None, **kwargs: Any) -> None:
        self.errors = errors
        if errors is not None:
            kwargs.setdefault("expected_exceptions", errors.classes)
        super().__init__(**kwargs)

    def handle_result(self, message: Any, worker_ctx: Any, result: Any,
                      exc_info: Any) -> tuple[Any, Any]:
        return self.rpc_consumer.handle_result(message, result, exc_info,
                                               error_of(exc_info, self.errors))


rpc = FastRpc.decorator
