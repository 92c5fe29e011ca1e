"""nameko's `rpc` entrypoint, answering without publisher confirms.

A confirm on an RPC reply buys nothing: if the broker loses a reply, the caller times out and
retries, which it must handle anyway. Waiting for one costs a broker round trip and a reader wake
per call, a large share of tracking's per-call overhead under load. Requests are consumed exactly
as nameko does; events go through the outbox relay, with confirms."""

from __future__ import annotations

import sys
from typing import Any

from kombu.utils.json import dumps
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import UnserializableValueError, serialize
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

from shared.chassis.amqpfast import fast_channel


class ReplyPublisher(Publisher):
    use_confirms = False


class ReplyResponder(Responder):
    publisher_cls = ReplyPublisher


class ReplyingRpcConsumer(RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        config = self.container.config
        if (message.properties.get("content_type") == "application/json"
                and not config.get(AMQP_SSL_CONFIG_KEY)):
            result, exc_info = self._reply_fast(config, message, result, exc_info)
            self.queue_consumer.ack_message(message)
            return result, exc_info
        responder = ReplyResponder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


    def _reply_fast(self, config: Any, message: Any, result: Any,
                    exc_info: Any) -> tuple[Any, Any]:
        """nameko's Responder.send_response, serialising once and writing the frame directly."""
        error = serialize(exc_info[1]) if exc_info is not None else None
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


class FastRpc(Rpc):
    rpc_consumer = ReplyingRpcConsumer()


rpc = FastRpc.decorator
